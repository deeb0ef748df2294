-- Sightline schema: queues, agents, interactions, the append-only transition log, transfer
-- links and completed history. The life cycle itself is enforced by the functions in
-- 002_lifecycle.sql, which every writer calls.

create schema if not exists sightline;

create type sightline.interaction_state as enum (
    'idle', 'data_collection', 'queued', 'delivery_pending',
    'delivered', 'held', 'after_call_work', 'completed'
);

create table sightline.queues (
    id                            text primary key check (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name                          text not null check (length(name) between 1 and 200),
    service_level_seconds         integer not null default 20 check (service_level_seconds > 0),
    service_level_target_percent  integer not null default 80 check (service_level_target_percent between 1 and 100),
    wait_warning_seconds          integer not null default 30 check (wait_warning_seconds > 0),
    wait_alarm_seconds            integer not null default 60 check (wait_alarm_seconds > 0),
    hold_alarm_seconds            integer not null default 120 check (hold_alarm_seconds > 0),
    created_at                    timestamptz not null default now()
);

-- kind 'voice_application' is the IVR: it can accept and answer transferred interactions.
create table sightline.agents (
    id          text primary key check (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name        text not null check (length(name) between 1 and 200),
    kind        text not null default 'person' check (kind in ('person', 'voice_application')),
    queues      text[] not null default '{}',
    created_at  timestamptz not null default now()
);

create table sightline.interactions (
    id             bigint generated always as identity primary key,
    call_id        text not null check (length(call_id) between 1 and 128),
    state          sightline.interaction_state not null,
    queue_id       text references sightline.queues,
    agent_id       text references sightline.agents,       -- fixed at acceptance, never changes
    held_by        text references sightline.agents,       -- set only while held
    transfer_from  bigint references sightline.interactions, -- the link original -> this one
    transfer_to    bigint references sightline.interactions, -- the new interaction of a transfer in progress
    created_at     timestamptz not null,
    state_since    timestamptz not null,
    queued_at      timestamptz,
    completed_at   timestamptz,
    version        integer not null                          -- transitions applied so far
);
create index interactions_call_id on sightline.interactions (call_id);
create index interactions_live on sightline.interactions (id) where state <> 'completed';
create index interactions_transfer_from on sightline.interactions (transfer_from) where transfer_from is not null;

-- The transition log: append-only, one row per state change, the data the live server streams.
--
-- Stream order is (order_tx, id). order_tx is the writing transaction's id, raised to the
-- previous version's order_tx when that is larger (a transaction with an older id can write an
-- interaction after a younger one committed a change to it, e.g. in a multi-statement batch).
-- A reader that takes only rows with order_tx < pg_snapshot_xmin(pg_current_snapshot()) sees
-- only finished transactions and never skips a row: every transaction still running has an id
-- >= that xmin, and so does every row it can still add. Per interaction the order is its
-- version order, which is its commit order (each write holds the interaction's row lock).
create table sightline.transitions (
    id              bigint generated always as identity primary key,
    order_tx        xid8 not null,
    interaction_id  bigint not null references sightline.interactions,
    version         integer not null,
    from_state      sightline.interaction_state,             -- null: the interaction was created
    to_state        sightline.interaction_state not null,
    at              timestamptz not null,
    agent_id        text,
    queue_id        text,
    held_by         text,
    related_id      bigint,   -- transfers: the other interaction of the link
    cause           text not null check (cause in ('writer', 'transfer_started', 'transfer_created',
                                                   'transfer_succeeded', 'transfer_failed')),
    unique (interaction_id, version)
);
create index transitions_stream_order on sightline.transitions (order_tx, id);

-- Transfer links: original -> new. status follows the new interaction's outcome.
create table sightline.transfers (
    id           bigint generated always as identity primary key,
    original_id  bigint not null references sightline.interactions,
    new_id       bigint not null unique references sightline.interactions,
    kind         text not null check (kind in ('agent', 'queue', 'voice_application')),
    target       text not null,
    status       text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
    started_at   timestamptz not null,
    ended_at     timestamptz
);
create index transfers_original on sightline.transfers (original_id);

-- The life-cycle table. kind: 'writer' (any writer may ask for it), 'transfer_begin' (only
-- sightline.begin_transfer), 'transfer_outcome' (only follows the new interaction's outcome).
create table sightline.transition_rules (
    from_state  sightline.interaction_state not null,
    to_state    sightline.interaction_state not null,
    kind        text not null check (kind in ('writer', 'transfer_begin', 'transfer_outcome')),
    primary key (from_state, to_state)
);
insert into sightline.transition_rules (from_state, to_state, kind) values
    ('idle', 'data_collection', 'writer'),
    ('idle', 'queued', 'writer'),
    ('idle', 'delivery_pending', 'writer'),
    ('idle', 'completed', 'writer'),
    ('data_collection', 'queued', 'writer'),
    ('data_collection', 'completed', 'writer'),
    ('queued', 'delivery_pending', 'writer'),
    ('queued', 'completed', 'writer'),
    ('delivery_pending', 'delivered', 'writer'),
    ('delivery_pending', 'completed', 'writer'),
    ('delivered', 'held', 'writer'),
    ('delivered', 'after_call_work', 'writer'),
    ('delivered', 'queued', 'transfer_begin'),
    ('held', 'delivered', 'writer'),
    ('queued', 'after_call_work', 'transfer_outcome'),
    ('queued', 'delivered', 'transfer_outcome'),
    ('after_call_work', 'completed', 'writer');

-- Completed interactions, reviewed for statistics (computed in the same transaction as the
-- completing transition, by sightline.record_history).
create table sightline.interaction_history (
    interaction_id                 bigint primary key references sightline.interactions,
    call_id                        text not null,
    queue_id                       text,
    agent_id                       text,
    transfer_from                  bigint,
    created_at                     timestamptz not null,
    completed_at                   timestamptz not null,
    wait_seconds                   double precision,  -- first queued until first delivered (or until abandon)
    talk_seconds                   double precision not null,
    hold_seconds                   double precision not null,
    hold_count                     integer not null,
    after_call_work_seconds        double precision not null,
    answered                       boolean not null,
    answered_within_service_level  boolean,           -- null when it never waited in a queue
    abandoned                      boolean not null,
    abandoned_from                 sightline.interaction_state,
    short_abandon                  boolean not null,
    transferred                    boolean not null,  -- started a transfer that succeeded
    failed_transfer_leg            boolean not null   -- was the new interaction of a failed transfer
);
create index interaction_history_completed on sightline.interaction_history (completed_at desc);
create index interaction_history_queue on sightline.interaction_history (queue_id, completed_at desc);
