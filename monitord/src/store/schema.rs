//! Diesel's view of the tables created by `migrations/`. Keep in step with the SQL there.

diesel::table! {
    clients (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    instances (id) {
        id -> BigInt,
        client_id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    metas (id) {
        id -> BigInt,
        hostname -> Nullable<Text>,
        os -> Nullable<Text>,
        agent -> Nullable<Text>,
    }
}

diesel::table! {
    disks (id) {
        id -> BigInt,
        client_id -> BigInt,
        mount -> Text,
        fs -> Text,
    }
}

diesel::table! {
    raw_samples (id) {
        id -> BigInt,
        instance_id -> BigInt,
        seq -> BigInt,
        ts -> BigInt,
        meta_id -> BigInt,
        cpu -> BigInt,
        mem_total -> BigInt,
        mem_used -> BigInt,
        mem_avail -> BigInt,
        mem_pct -> BigInt,
        swap_total -> Nullable<BigInt>,
        swap_used -> Nullable<BigInt>,
        swap_pct -> Nullable<BigInt>,
        uptime -> Nullable<BigInt>,
        load1 -> Nullable<BigInt>,
        load5 -> Nullable<BigInt>,
        load15 -> Nullable<BigInt>,
        processes -> Nullable<BigInt>,
        disks -> Binary,
    }
}

diesel::table! {
    sample_blocks (id) {
        id -> BigInt,
        client_id -> BigInt,
        ts_min -> BigInt,
        ts_max -> BigInt,
        samples -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    packed_seqs (instance_id, lo) {
        instance_id -> BigInt,
        lo -> BigInt,
        hi -> BigInt,
        ts_max -> Nullable<BigInt>,
    }
}

diesel::table! {
    client_top (client_id) {
        client_id -> BigInt,
        ts -> BigInt,
        top -> Text,
    }
}

diesel::joinable!(client_top -> clients (client_id));

diesel::allow_tables_to_appear_in_same_query!(
    clients,
    instances,
    metas,
    disks,
    raw_samples,
    sample_blocks,
    packed_seqs,
    client_top,
    rollup_packs,
);

/// One row of the raw tier (without its arrival `id`), as inserted and as read back.
#[derive(
    Debug, Clone, PartialEq, Eq, diesel::Insertable, diesel::Queryable, diesel::Selectable,
)]
#[diesel(table_name = raw_samples, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct RawRow {
    pub instance_id: i64,
    pub seq: i64,
    pub ts: i64,
    pub meta_id: i64,
    pub cpu: i64,
    pub mem_total: i64,
    pub mem_used: i64,
    pub mem_avail: i64,
    pub mem_pct: i64,
    pub swap_total: Option<i64>,
    pub swap_used: Option<i64>,
    pub swap_pct: Option<i64>,
    pub uptime: Option<i64>,
    pub load1: Option<i64>,
    pub load5: Option<i64>,
    pub load15: Option<i64>,
    pub processes: Option<i64>,
    pub disks: Vec<u8>,
}

impl RawRow {
    pub fn new(
        instance_id: i64,
        seq: i64,
        meta_id: i64,
        v: &super::stored::Values,
        disks: &[super::stored::DiskValues],
    ) -> RawRow {
        let mut blob = Vec::with_capacity(1 + disks.len() * 12);
        super::codec::encode_disks(disks, &mut blob);
        RawRow {
            instance_id,
            seq,
            ts: v.ts,
            meta_id,
            cpu: v.cpu,
            mem_total: v.mem_total,
            mem_used: v.mem_used,
            mem_avail: v.mem_avail,
            mem_pct: v.mem_pct,
            swap_total: v.swap.map(|s| s[0]),
            swap_used: v.swap.map(|s| s[1]),
            swap_pct: v.swap.map(|s| s[2]),
            uptime: v.uptime,
            load1: v.load.map(|l| l[0]),
            load5: v.load.map(|l| l[1]),
            load15: v.load.map(|l| l[2]),
            processes: v.processes,
            disks: blob,
        }
    }

    pub fn into_packed(self) -> Result<super::codec::PackedRow, super::codec::Corrupt> {
        let swap = match (self.swap_total, self.swap_used, self.swap_pct) {
            (Some(t), Some(u), Some(p)) => Some([t, u, p]),
            _ => None,
        };
        let load = match (self.load1, self.load5, self.load15) {
            (Some(a), Some(b), Some(c)) => Some([a, b, c]),
            _ => None,
        };
        Ok(super::codec::PackedRow {
            instance_id: self.instance_id,
            seq: self.seq,
            meta_id: self.meta_id,
            disks: super::codec::decode_disks(&self.disks)?,
            values: super::stored::Values {
                ts: self.ts,
                cpu: self.cpu,
                mem_total: self.mem_total,
                mem_used: self.mem_used,
                mem_avail: self.mem_avail,
                mem_pct: self.mem_pct,
                swap,
                uptime: self.uptime,
                load,
                processes: self.processes,
            },
        })
    }
}

diesel::table! {
    rollups (client_id, step_s, bucket_ms) {
        client_id -> BigInt,
        step_s -> BigInt,
        bucket_ms -> BigInt,
        samples -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    rollup_packs (id) {
        id -> BigInt,
        client_id -> BigInt,
        step_s -> BigInt,
        first_ms -> BigInt,
        buckets -> BigInt,
        samples -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    rollup_progress (client_id, step_s) {
        client_id -> BigInt,
        step_s -> BigInt,
        done_ms -> BigInt,
    }
}

diesel::table! {
    rollup_dirty (client_id, bucket_ms) {
        client_id -> BigInt,
        bucket_ms -> BigInt,
        version -> BigInt,
    }
}
