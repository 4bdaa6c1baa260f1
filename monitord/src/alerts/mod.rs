//! Alert rules, their state, the outbox and the mail sender. (being written)
