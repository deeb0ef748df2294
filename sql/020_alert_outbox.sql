-- The alert outbox: every alert decision (an alert fired, an alert resolved) is written here
-- when the live server decides it, with one delivery row per receiver, then delivered from
-- here. A server that restarts resumes delivery from these rows and restores the alerts that
-- were firing (sightline.active_alerts), so ids stay the same and nothing is decided twice.
--
-- event_id is stable ("<alert id>.firing" / "<alert id>.resolved"): receivers deduplicate on
-- it (the webhook-id header). A delivery row goes pending -> delivered, or pending -> dead
-- after its last retry (or a 410 Gone); dead rows are the dead letters (GET /api/alerts/dead-letters).

create table sightline.alert_events (
    seq         bigint generated always as identity primary key,
    event_id    text not null unique check (length(event_id) between 1 and 200),
    alert_id    text not null check (length(alert_id) between 1 and 200),
    kind        text not null check (kind in ('firing', 'resolved')),
    rule        text not null,
    queue_id    text,
    alert       jsonb not null,               -- the alert as receivers and the board get it
    decided_at  timestamptz not null
);

create index alert_events_alert on sightline.alert_events (alert_id, seq);

create table sightline.alert_deliveries (
    event_seq        bigint not null references sightline.alert_events (seq) on delete cascade,
    receiver         text not null check (length(receiver) between 1 and 64),
    status           text not null default 'pending' check (status in ('pending', 'delivered', 'dead')),
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    last_error       text,
    finished_at      timestamptz,
    primary key (event_seq, receiver)
);

-- The next pending delivery of a receiver, in decision order.
create index alert_deliveries_pending on sightline.alert_deliveries (receiver, event_seq) where status = 'pending';

-- Alerts whose latest decision is "firing".
create view sightline.active_alerts as
select e.seq, e.event_id, e.alert_id, e.rule, e.queue_id, e.alert, e.decided_at
from (select distinct on (alert_id) * from sightline.alert_events order by alert_id, seq desc) e
where e.kind = 'firing';
