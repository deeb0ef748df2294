-- Agent presence: what an agent declared (logged_out, ready, not_ready with a reason), enforced
-- for every writer like the interaction life cycle, and logged like it: every change is a row of
-- sightline.presence_log, streamed in commit order with the transitions.
--
-- Refusals (each changes nothing):
--   SL010 unknown agent                 SL023 no change (already in that state with that reason)
--   SL020 unknown presence state        SL024 a voice application has no presence
--   SL021 reason missing or misplaced   SL007 time before the agent's last presence change
--   SL022 unknown not-ready reason      SL013 / SL014 as in 003 (time not finite / in the future)
--
-- An agent that never changed presence is logged_out (no row in sightline.agent_presence).

create type sightline.presence_state as enum ('logged_out', 'ready', 'not_ready');

-- The not-ready reasons a writer may give: a configurable list.
create table sightline.presence_reasons (
    code        text primary key check (code ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name        text not null check (length(name) between 1 and 200),
    created_at  timestamptz not null default now()
);
insert into sightline.presence_reasons (code, name) values
    ('break', 'Break'), ('lunch', 'Lunch'), ('training', 'Training'), ('meeting', 'Meeting'),
    ('coaching', 'Coaching'), ('other', 'Other');

-- The current presence of each agent that has ever changed it.
create table sightline.agent_presence (
    agent_id         text primary key references sightline.agents on delete cascade,
    state            sightline.presence_state not null,
    reason           text references sightline.presence_reasons,
    since            timestamptz not null,
    logged_in_since  timestamptz,          -- last logged_out -> ready/not_ready; null while logged out
    version          integer not null       -- presence changes so far
);

-- The presence log. Positions share the transition log's sequence, so (order_tx, id) orders both
-- logs together and a position names one row of one of them. order_tx follows the rule of
-- sightline.transitions (001_schema.sql): the writing transaction's id, raised to the agent's
-- previous row's order_tx when that is larger; each change holds the agent's row lock.
create table sightline.presence_log (
    id           bigint primary key default nextval('sightline.transitions_id_seq'::regclass),
    order_tx     xid8 not null,
    agent_id     text not null references sightline.agents on delete cascade,
    version      integer not null,
    from_state   sightline.presence_state not null,
    from_reason  text,
    to_state     sightline.presence_state not null,
    to_reason    text,
    at           timestamptz not null,
    unique (agent_id, version)
);
create index presence_log_stream_order on sightline.presence_log (order_tx, id);
create index presence_log_agent_at on sightline.presence_log (agent_id, at);

create function sightline.parse_presence(p_state text)
returns sightline.presence_state language plpgsql immutable as $$
begin
    if p_state is null or not (p_state = any (enum_range(null::sightline.presence_state)::text[])) then
        perform sightline.refuse('SL020', format('unknown presence state %L', p_state),
            'presence states are: ' || array_to_string(enum_range(null::sightline.presence_state)::text[], ', '));
    end if;
    return p_state::sightline.presence_state;
end $$;

-- Changes an agent's presence. p_reason: the not-ready reason (required for not_ready, refused
-- otherwise). p_at: when it happened (null: now). Returns the log row.
create function sightline.set_presence(p_agent text, p_state text, p_reason text default null,
                                       p_at timestamptz default null)
returns sightline.presence_log language plpgsql as $$
declare
    target sightline.presence_state := sightline.parse_presence(p_state);
    a sightline.agents;
    cur sightline.agent_presence;
    cur_state sightline.presence_state;
    cur_reason text;
    t timestamptz;
    prev_order xid8;
    out_row sightline.presence_log;
begin
    select * into a from sightline.agents where id = p_agent for no key update;
    if not found then
        perform sightline.refuse('SL010', format('unknown agent %L', p_agent), 'register the agent first (sightline.upsert_agent)');
    end if;
    if a.kind = 'voice_application' then
        perform sightline.refuse('SL024', format('agent %L is a voice application, which has no presence', a.id));
    end if;
    if target = 'not_ready' and p_reason is null then
        perform sightline.refuse('SL021', format('agent %s: not_ready needs a reason', a.id),
            'reasons are: ' || (select string_agg(code, ', ' order by code) from sightline.presence_reasons));
    end if;
    if target <> 'not_ready' and p_reason is not null then
        perform sightline.refuse('SL021', format('agent %s: a reason (%L) goes only with not_ready, not with %s', a.id, p_reason, target),
            'leave the reason out');
    end if;
    if p_reason is not null and not exists (select 1 from sightline.presence_reasons where code = p_reason) then
        perform sightline.refuse('SL022', format('agent %s: unknown not-ready reason %L', a.id, p_reason),
            'reasons are: ' || (select string_agg(code, ', ' order by code) from sightline.presence_reasons)
            || ' (add one with sightline.upsert_presence_reason)');
    end if;
    select * into cur from sightline.agent_presence where agent_id = a.id;
    cur_state := coalesce(cur.state, 'logged_out');
    cur_reason := cur.reason;
    if cur_state = target and cur.reason is not distinct from p_reason then
        perform sightline.refuse('SL023', format('agent %s is already %s%s', a.id, target,
            case when p_reason is null then '' else format(' (%s)', p_reason) end));
    end if;
    perform sightline.check_time(p_at, format('agent %s', a.id));
    if p_at is null then
        t := greatest(clock_timestamp(), coalesce(cur.since, '-infinity'));
    elsif p_at < cur.since then
        perform sightline.refuse('SL007', format(
            'agent %s: time %s is earlier than its last presence change at %s', a.id, p_at, cur.since),
            'send presence changes in order, with non-decreasing times');
    else
        t := p_at;
    end if;
    select order_tx into prev_order from sightline.presence_log where agent_id = a.id and version = cur.version;
    insert into sightline.agent_presence as p (agent_id, state, reason, since, logged_in_since, version)
    values (a.id, target, p_reason, t, case when target <> 'logged_out' then t end, 1)
    on conflict (agent_id) do update set
        state = excluded.state, reason = excluded.reason, since = excluded.since,
        logged_in_since = case when excluded.state = 'logged_out' then null
                               when p.state = 'logged_out' then excluded.since
                               else p.logged_in_since end,
        version = p.version + 1
    returning * into cur;
    insert into sightline.presence_log (order_tx, agent_id, version, from_state, from_reason, to_state, to_reason, at)
    values (greatest(pg_current_xact_id(), prev_order), a.id, cur.version, cur_state,
            cur_reason,
            target, p_reason, t)
    returning * into out_row;
    perform pg_notify('sightline_log', '');
    return out_row;
end $$;

-- The list of not-ready reasons: create or rename one (wakes the live server).
create function sightline.upsert_presence_reason(p_code text, p_name text)
returns void language sql as $$
    insert into sightline.presence_reasons (code, name) values (p_code, p_name)
    on conflict (code) do update set name = excluded.name
$$;

create trigger presence_reasons_notify_config
    after insert or update or delete or truncate on sightline.presence_reasons
    for each statement execute function sightline.notify_config();
