DROP TABLE outbox;
DROP TABLE alert_states;
