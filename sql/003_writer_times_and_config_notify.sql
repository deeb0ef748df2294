-- Times a writer passes must be real times, not from the future; queue and agent changes wake
-- the live server.
--
-- Before this migration `select sightline.create_interaction('x', 'infinity')` committed a log
-- row whose time no reader can turn into a number. Now every function that takes a time from
-- a writer (create_interaction / create_row, transition and begin_transfer through step_time)
-- refuses (apply_step, which only those functions call, gets times they checked):
--
--   SL013 bad argument        (as in 002) also: a time that is not finite (infinity, -infinity),
--                             or a setting sightline.max_clock_skew that is not an interval >= 0
--   SL014 time in the future  later than the database clock plus the allowed clock skew
--
-- The allowed clock skew is the setting sightline.max_clock_skew, an interval, default
-- '5 minutes' when unset or empty. Set it for a database, a role or a session:
--     alter database sightline set sightline.max_clock_skew = '30 seconds';
--     set sightline.max_clock_skew = '1 minute';
-- A value that is not an interval >= 0 refuses timed writes (SL013) rather than allowing any
-- time. A write without a time (NULL: now) is never checked against it.
--
-- Rows written around these functions (a direct insert or update) can still hold any time:
-- readers must not fail on them (InteractionStore reads such a row as unreadable).
--
-- Queues and agents: any insert, update or delete (upsert_queue / upsert_agent, or plain SQL)
-- sends NOTIFY sightline_config, so a live server reloads its configuration.

-- The allowed clock skew (see the header).
create function sightline.max_clock_skew()
returns interval language plpgsql stable as $$
declare
    raw text := current_setting('sightline.max_clock_skew', true);
    skew interval;
begin
    if raw is null or raw = '' then
        return interval '5 minutes';
    end if;
    begin
        skew := raw::interval;
    exception when invalid_datetime_format or datetime_field_overflow or interval_field_overflow then
        skew := null;
    end;
    if skew is null or skew < interval '0' then
        perform sightline.refuse('SL013', format('setting sightline.max_clock_skew = %L is not an interval of 0 or more', raw),
            'set it to an interval such as ''5 minutes'', or reset it for the default of 5 minutes');
    end if;
    return skew;
end $$;

-- A time from a writer: NULL (now), or finite and not later than now plus the allowed skew.
-- p_what names what it is the time of, for the message ("interaction 12", "new interaction").
create function sightline.check_time(p_at timestamptz, p_what text)
returns void language plpgsql as $$
declare
    skew interval;
begin
    if p_at is null then
        return;
    end if;
    if not isfinite(p_at) then
        perform sightline.refuse('SL013', format('%s: time %s is not a finite time', p_what, p_at),
            'pass the time it happened (ISO 8601 with a zone), or no time for now');
    end if;
    skew := sightline.max_clock_skew();
    if p_at > clock_timestamp() + skew then
        perform sightline.refuse('SL014', format(
            '%s: time %s is in the future (database time %s, allowed clock skew %s)',
            p_what, p_at, clock_timestamp(), skew),
            'check the writer''s clock (NTP) and pass the time it happened, or no time for now; '
            'the allowance is the setting sightline.max_clock_skew');
    end if;
end $$;

-- As in 002, plus: the writer's time is checked, and an interaction whose last transition time
-- is not finite (written around these functions) takes no further step until it is repaired
-- (every later time would be before it, or, as now, become infinite too).
create or replace function sightline.step_time(r sightline.interactions, p_at timestamptz)
returns timestamptz language plpgsql as $$
begin
    perform sightline.check_time(p_at, format('interaction %s', r.id));
    if not isfinite(r.state_since) then
        perform sightline.refuse('SL013', format(
            'interaction %s: its last transition time %s is not finite, so no step can follow it', r.id, r.state_since),
            'the row was written around the life-cycle functions: repair sightline.interactions.state_since and the log row''s time');
    end if;
    if p_at is null then
        return greatest(clock_timestamp(), r.state_since);
    end if;
    if p_at < r.state_since then
        perform sightline.refuse('SL007', format(
            'interaction %s: time %s is earlier than its last transition at %s', r.id, p_at, r.state_since),
            'send transitions in order, with non-decreasing times');
    end if;
    return p_at;
end $$;

-- As in 002, plus the check of the writer's time.
create or replace function sightline.create_row(p_call_id text, p_at timestamptz, p_transfer_from bigint, p_cause text)
returns bigint language plpgsql as $$
declare
    new_id bigint;
    t timestamptz := coalesce(p_at, clock_timestamp());
begin
    if p_call_id is null or length(p_call_id) not between 1 and 128 then
        perform sightline.refuse('SL013', 'call id must be 1 to 128 characters');
    end if;
    perform sightline.check_time(p_at, 'new interaction');
    insert into sightline.interactions (call_id, state, transfer_from, created_at, state_since, version)
    values (p_call_id, 'idle', p_transfer_from, t, t, 1)
    returning id into new_id;
    insert into sightline.transitions
        (order_tx, interaction_id, version, from_state, to_state, at, cause, related_id)
    values (pg_current_xact_id(), new_id, 1, null, 'idle', t, p_cause, p_transfer_from);
    perform pg_notify('sightline_log', '');
    return new_id;
end $$;

-- Statistics of a completed interaction: unchanged from 002, where they are computed and
-- stored in sightline.interaction_history in the transaction of the completing transition.
-- They are the only statistics: the log reader carries them with the completing row.
comment on function sightline.record_history(bigint) is
    'Statistics of a completed interaction, stored in sightline.interaction_history in the transaction of the completing transition; the only definition (readers carry the stored values).';

-- Queue and agent changes wake the live server (one NOTIFY per transaction: PostgreSQL folds
-- identical notifications of one transaction into one).
create function sightline.notify_config()
returns trigger language plpgsql as $$
begin
    perform pg_notify('sightline_config', '');
    return null;
end $$;

create trigger queues_notify_config
    after insert or update or delete or truncate on sightline.queues
    for each statement execute function sightline.notify_config();

create trigger agents_notify_config
    after insert or update or delete or truncate on sightline.agents
    for each statement execute function sightline.notify_config();
