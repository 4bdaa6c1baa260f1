-- Alerts: the state of each (client, rule) that is not ok, and the outbox of alert mail.
-- Both are written in the same transaction as the samples that caused them, so a crash
-- never forgets a firing alert nor mails it twice.

-- One row per (client, rule) that is pending or firing; ok is the absence of a row.
-- `rule` is the alert type (memory, cpu, swap, disk, load, processes, uptime) or `down`
-- for the built-in host-down rule. Times are unix milliseconds on monitord's clock.
CREATE TABLE alert_states (
    client TEXT NOT NULL,
    rule TEXT NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('pending', 'firing')),
    -- pending/firing: when the value first crossed the limit; down: the last sample's arrival
    since_ms INTEGER NOT NULL,
    -- firing: when the last FIRING mail (first or repeat) was written, for `repeat`
    notified_ms INTEGER NOT NULL,
    -- the last value evaluated (down: seconds of silence)
    value REAL NOT NULL,
    -- disk: the mount the value belongs to
    detail TEXT,
    changed_ms INTEGER NOT NULL,
    PRIMARY KEY (client, rule)
) WITHOUT ROWID;

-- One row per (mail, recipient), so one bad address never holds back the others.
-- The Message-ID and Date are fixed here, so a mail re-sent after a crash between the SMTP
-- server's acceptance and our commit is recognisably the same mail.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    client TEXT NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    -- pending: to be (re)tried at next_attempt_ms; sent; failed: a permanent (5xx) rejection
    -- or retries given up
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT,
    done_ms INTEGER,
    UNIQUE (message_id, recipient)
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';
