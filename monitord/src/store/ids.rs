//! The writer's cache of ids: a client's row id, its agent instances, its metadata row and its
//! disks, looked up (and created on first sight) once and then kept in memory, so storing a
//! sample costs no lookup. Nothing else creates or removes those rows; the writer drops the
//! whole cache when a batch rolls back, since ids created inside it no longer exist.
//!
//! Not here: the samples themselves (see [`super::writer`]).

use std::collections::HashMap;

use diesel::prelude::*;
use monitor_core::Sample;

use super::schema::{clients, disks, instances, metas};
use super::stored::Meta;

#[derive(Default)]
pub(super) struct Cache {
    clients: HashMap<String, ClientCache>,
}

pub(super) struct ClientCache {
    pub(super) id: i64,
    instances: Vec<InstanceEntry>,
    meta: Option<(Meta, i64)>,
    disks: Vec<(String, String, i64)>,
}

struct InstanceEntry {
    name: String,
    id: i64,
}

/// Instances kept per client in the cache; an agent restart makes a new one.
const INSTANCES_CACHED: usize = 8;

pub(super) fn client_cache<'c>(
    conn: &mut SqliteConnection,
    cache: &'c mut Cache,
    name: &str,
) -> QueryResult<&'c mut ClientCache> {
    if !cache.clients.contains_key(name) {
        let id = client_id(conn, name)?;
        cache.clients.insert(
            name.to_owned(),
            ClientCache {
                id,
                instances: Vec::new(),
                meta: None,
                disks: Vec::new(),
            },
        );
    }
    Ok(cache.clients.get_mut(name).expect("inserted above"))
}

/// The id of client `name`, created on first sight.
pub fn client_id(conn: &mut SqliteConnection, name: &str) -> QueryResult<i64> {
    diesel::insert_into(clients::table)
        .values(clients::name.eq(name))
        .on_conflict_do_nothing()
        .execute(conn)?;
    clients::table
        .filter(clients::name.eq(name))
        .select(clients::id)
        .first(conn)
}

pub(super) fn instance(
    conn: &mut SqliteConnection,
    client: &mut ClientCache,
    name: &str,
) -> QueryResult<i64> {
    if let Some(i) = client.instances.iter().position(|e| e.name == name) {
        // Most recently used first: an agent's instance stays at the front.
        client.instances[..=i].rotate_right(1);
        return Ok(client.instances[0].id);
    }
    diesel::insert_into(instances::table)
        .values((instances::client_id.eq(client.id), instances::name.eq(name)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    let id = instances::table
        .filter(instances::client_id.eq(client.id))
        .filter(instances::name.eq(name))
        .select(instances::id)
        .first::<i64>(conn)?;
    client.instances.truncate(INSTANCES_CACHED - 1);
    client.instances.insert(
        0,
        InstanceEntry {
            name: name.to_owned(),
            id,
        },
    );
    Ok(id)
}

pub(super) fn meta(
    conn: &mut SqliteConnection,
    client: &mut ClientCache,
    s: &Sample,
) -> QueryResult<i64> {
    if let Some((cached, id)) = &client.meta {
        if cached.matches(s) {
            return Ok(*id);
        }
    }
    let meta = Meta::of(s);
    let find = |conn: &mut SqliteConnection| {
        metas::table
            .filter(metas::hostname.is(&meta.hostname))
            .filter(metas::os.is(&meta.os))
            .filter(metas::agent.is(&meta.agent))
            .select(metas::id)
            .first::<i64>(conn)
            .optional()
    };
    let id = match find(conn)? {
        Some(id) => id,
        None => {
            diesel::insert_into(metas::table)
                .values((
                    metas::hostname.eq(&meta.hostname),
                    metas::os.eq(&meta.os),
                    metas::agent.eq(&meta.agent),
                ))
                .execute(conn)?;
            find(conn)?.ok_or(diesel::result::Error::NotFound)?
        }
    };
    client.meta = Some((meta, id));
    Ok(id)
}

pub(super) fn disk(
    conn: &mut SqliteConnection,
    client: &mut ClientCache,
    mount: &str,
    fs: &str,
) -> QueryResult<i64> {
    if let Some((_, _, id)) = client.disks.iter().find(|(m, f, _)| m == mount && f == fs) {
        return Ok(*id);
    }
    diesel::insert_into(disks::table)
        .values((
            disks::client_id.eq(client.id),
            disks::mount.eq(mount),
            disks::fs.eq(fs),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    let id = disks::table
        .filter(disks::client_id.eq(client.id))
        .filter(disks::mount.eq(mount))
        .filter(disks::fs.eq(fs))
        .select(disks::id)
        .first(conn)?;
    client.disks.push((mount.to_owned(), fs.to_owned(), id));
    Ok(id)
}
