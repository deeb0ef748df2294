-- Figures per queue and per agent, per 15-minute interval and per day in the contact center's
-- time zone: one definition (sightline.figures) that the live server and GET /api/figures both
-- read. Every figure is counted at the moment of its event (see docs/protocol.md, "FIGURES",
-- and the README, "Figures"):
--   answer (first delivered)    answered, answeredWithinServiceLevel, answerWaitSeconds, offered
--   abandon (completed unanswered after entering a queue)   abandoned, shortAbandoned, offered
--   work end (completed after an answer)   handled, talk, hold, after-call work, held
--   transfer outcome            transfers (succeeded), transfersFailed
-- and presence and handling time by overlap with the period (up to now for the current one).
--
-- The time zone is sightline.settings.time_zone (default UTC), set with sightline.set_time_zone.

create table sightline.settings (
    singleton  boolean primary key default true check (singleton),
    time_zone  text not null default 'UTC'
);
insert into sightline.settings default values;

create trigger settings_notify_config
    after insert or update or delete or truncate on sightline.settings
    for each statement execute function sightline.notify_config();

create function sightline.time_zone()
returns text language sql stable as $$
    select coalesce((select time_zone from sightline.settings), 'UTC')
$$;

create function sightline.set_time_zone(p_zone text)
returns void language plpgsql as $$
begin
    if p_zone is null or not exists (select 1 from pg_timezone_names where name = p_zone) then
        perform sightline.refuse('SL013', format('unknown time zone %L', p_zone),
            'use a name of pg_timezone_names, e.g. Europe/Paris, America/New_York, UTC');
    end if;
    update sightline.settings set time_zone = p_zone;
end $$;

-- ISO 8601 in UTC with milliseconds, as the rest of the wire writes times.
create function sightline.iso(p_t timestamptz)
returns text language sql immutable as $$
    select to_char(p_t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Seconds covered by a multirange.
create function sightline.seconds_of(p_m tstzmultirange)
returns double precision language sql immutable as $$
    select coalesce(sum(extract(epoch from upper(r) - lower(r))), 0)::float8 from unnest(p_m) r
$$;

-- The periods covering [p_from, p_to): 15-minute intervals (aligned to :00/:15/:30/:45 of every
-- zone in use, whose offsets are whole quarters of an hour) or days from the zone's midnight.
create function sightline.periods(p_from timestamptz, p_to timestamptz, p_granularity text)
returns table (period_start timestamptz, period_end timestamptz)
language plpgsql stable as $$
#variable_conflict use_column
declare
    tz text := sightline.time_zone();
begin
    if p_from is null or p_to is null or not isfinite(p_from) or not isfinite(p_to) or p_to <= p_from then
        perform sightline.refuse('SL013', format('periods: from %s to %s is not a range of finite times', p_from, p_to),
            'pass from < to');
    end if;
    if p_granularity = 'interval' then
        if p_to - p_from > interval '7 days 1 hour' then
            perform sightline.refuse('SL013', 'periods: at most 7 days of intervals', 'ask for days, or a shorter range');
        end if;
        return query
            select s, s + interval '15 minutes'
              from generate_series(date_bin('15 minutes', p_from, timestamptz '2000-01-01 00:00:00+00'),
                                   p_to - interval '1 microsecond', interval '15 minutes') s;
    elsif p_granularity = 'day' then
        if p_to - p_from > interval '93 days' then
            perform sightline.refuse('SL013', 'periods: at most 92 days', 'ask for a shorter range');
        end if;
        return query
            select d at time zone tz, (d + interval '1 day') at time zone tz
              from generate_series(date_trunc('day', p_from at time zone tz),
                                   (p_to - interval '1 microsecond') at time zone tz, interval '1 day') d;
    else
        perform sightline.refuse('SL013', format('unknown granularity %L', p_granularity), 'granularities are: interval, day');
    end if;
end $$;

-- The interval and the day that hold p_at (default now), and p_at itself.
create function sightline.current_periods(p_at timestamptz default null)
returns table (time_zone text, interval_start timestamptz, interval_end timestamptz,
               day_start timestamptz, day_end timestamptz, as_of timestamptz)
language sql stable as $$
    with now_ as (select coalesce(p_at, clock_timestamp()) as t),
         i as (select * from sightline.periods((select t from now_), (select t from now_) + interval '1 microsecond', 'interval')),
         d as (select * from sightline.periods((select t from now_), (select t from now_) + interval '1 microsecond', 'day'))
    select sightline.time_zone(), i.period_start, i.period_end, d.period_start, d.period_end, (select t from now_)
      from i, d
$$;

-- The service level of a queue's counts, by its formula (README, "Service level"):
--   answered within N s / (answered + abandoned [- short abandons]) when abandons count,
--   answered within N s / answered otherwise. null when the denominator is 0.
create function sightline.service_level_percent(
    p_within bigint, p_answered bigint, p_abandoned bigint, p_short bigint,
    p_abandons_in_denominator boolean, p_exclude_short_abandons boolean)
returns double precision language sql immutable as $$
    select case when base > 0 then 100.0 * p_within / base end
      from (select p_answered + case when p_abandons_in_denominator
                                      then p_abandoned - case when p_exclude_short_abandons then p_short else 0 end
                                      else 0 end as base) b
$$;

-- Abandon rate: abandons that are not short over offered calls that are not short abandons.
create function sightline.abandon_percent(p_offered bigint, p_abandoned bigint, p_short bigint)
returns double precision language sql immutable as $$
    select case when p_offered - p_short > 0 then 100.0 * (p_abandoned - p_short) / (p_offered - p_short) end
$$;

-- The figures of handled work and transfers, shared by queues and agents (null counts: none).
create function sightline.work_figures(p_handled bigint, p_talk float8, p_hold float8, p_acw float8,
                                       p_held bigint, p_transfers bigint, p_transfers_failed bigint)
returns jsonb language sql immutable as $$
    select jsonb_build_object(
        'handled', coalesce(p_handled, 0),
        'talkSeconds', coalesce(p_talk, 0),
        'holdSeconds', coalesce(p_hold, 0),
        'afterCallWorkSeconds', coalesce(p_acw, 0),
        'handleSeconds', coalesce(p_talk + p_hold + p_acw, 0),
        'ahtSeconds', case when p_handled > 0 then (p_talk + p_hold + p_acw) / p_handled end,
        'held', coalesce(p_held, 0),
        'averageHoldSeconds', case when p_held > 0 then p_hold / p_held end,
        'transfers', coalesce(p_transfers, 0),
        'transfersFailed', coalesce(p_transfers_failed, 0))
$$;

-- The figures of every queue and person agent (or those named) for every period of
-- [p_from, p_to), one row per (scope, id, period), figures as a JSON object of the wire's shape.
create function sightline.figures(p_from timestamptz, p_to timestamptz, p_granularity text,
                                  p_queues text[] default null, p_agents text[] default null)
returns table (scope text, id text, period_start timestamptz, period_end timestamptz, figures jsonb)
-- JIT compiling this large query costs seconds and saves nothing at these sizes.
language plpgsql stable set jit = off as $$
#variable_conflict use_column
declare
    v_now timestamptz := clock_timestamp();
    lo timestamptz;
    hi timestamptz;
    ids bigint[];
begin
    select min(p.period_start), max(p.period_end) into lo, hi from sightline.periods(p_from, p_to, p_granularity) p;
    -- Interactions that can have an event or a handling span in [lo, hi).
    select array_agg(i.id) into ids from sightline.interactions i
     where i.created_at < hi and (i.completed_at is null or i.completed_at >= lo);
    return query
    with figures_periods as materialized (
        select * from sightline.periods(p_from, p_to, p_granularity)
    ), facts as materialized (
        select * from sightline.interaction_facts(coalesce(ids, '{}'))
    ), events as (
        -- answers: the queue's (when it waited in it) and the agent's
        select 'answer'::text as kind, f.answered_at as at, f.queue_id, f.agent_id,
               f.queued_at is not null as from_queue, f.wait_seconds as wait,
               f.answered_within_service_level as within, false as short,
               0::float8 as talk, 0::float8 as hold, 0::float8 as acw, false as was_held
          from facts f where f.answered_at is not null
        union all
        select 'abandon', f.completed_at, f.queue_id, f.agent_id, true, f.wait_seconds, null, f.short_abandon,
               0, 0, 0, false
          from facts f where f.queue_abandon
        union all
        select 'work_end', f.completed_at, f.queue_id, f.agent_id, f.queued_at is not null, null, null, false,
               f.talk, f.hold, f.acw, f.holds > 0
          from facts f where f.completed_at is not null and f.answered_at is not null
        union all
        select case when x.status = 'succeeded' then 'transfer' else 'transfer_failed' end, x.ended_at,
               o.queue_id, o.agent_id, false, null, null, false, 0, 0, 0, false
          from sightline.transfers x join sightline.interactions o on o.id = x.original_id
         where x.status <> 'pending' and x.ended_at >= lo and x.ended_at < hi
    ), counted as (
        select e.*, p.period_start, p.period_end
          from events e join figures_periods p on e.at >= p.period_start and e.at < p.period_end
    ), queue_counts as (
        select c.queue_id, c.period_start,
               count(*) filter (where kind = 'answer' and from_queue) as answered,
               count(*) filter (where kind = 'answer' and from_queue and within) as within,
               count(*) filter (where kind = 'abandon') as abandoned,
               count(*) filter (where kind = 'abandon' and short) as short,
               coalesce(sum(wait) filter (where kind = 'answer' and from_queue), 0)::float8 as answer_wait,
               max(wait) filter (where kind in ('answer', 'abandon') and from_queue) as longest,
               count(*) filter (where kind = 'work_end') as handled,
               coalesce(sum(talk) filter (where kind = 'work_end'), 0)::float8 as talk,
               coalesce(sum(hold) filter (where kind = 'work_end'), 0)::float8 as hold,
               coalesce(sum(acw) filter (where kind = 'work_end'), 0)::float8 as acw,
               count(*) filter (where kind = 'work_end' and was_held) as held,
               count(*) filter (where kind = 'transfer') as transfers,
               count(*) filter (where kind = 'transfer_failed') as transfers_failed
          from counted c where c.queue_id is not null group by c.queue_id, c.period_start
    ), agent_counts as (
        select c.agent_id, c.period_start,
               count(*) filter (where kind = 'answer') as answered,
               count(*) filter (where kind = 'work_end') as handled,
               coalesce(sum(talk) filter (where kind = 'work_end'), 0)::float8 as talk,
               coalesce(sum(hold) filter (where kind = 'work_end'), 0)::float8 as hold,
               coalesce(sum(acw) filter (where kind = 'work_end'), 0)::float8 as acw,
               count(*) filter (where kind = 'work_end' and was_held) as held,
               count(*) filter (where kind = 'transfer') as transfers,
               count(*) filter (where kind = 'transfer_failed') as transfers_failed
          from counted c where c.agent_id is not null and kind <> 'abandon' group by c.agent_id, c.period_start
    ), presence_spans as (
        select l.agent_id, l.to_state, l.to_reason,
               tstzrange(l.at, greatest(l.at, coalesce(lead(l.at) over (partition by l.agent_id order by l.version), v_now))) as span
          from sightline.presence_log l
         where l.at < hi and (p_agents is null or l.agent_id = any (p_agents))
    ), handling as (
        select f.agent_id,
               range_agg(tstzrange(f.answered_at, greatest(f.answered_at, coalesce(f.completed_at, v_now)))) as spans
          from facts f where f.agent_id is not null and f.answered_at is not null group by f.agent_id
    ), agent_list as (
        select a.id from sightline.agents a
         where a.kind = 'person' and (p_agents is null or a.id = any (p_agents))
    ), agent_time as (
        select a.id as agent_id, p.period_start,
               tstzmultirange(tstzrange(p.period_start, greatest(p.period_start, least(p.period_end, v_now)))) as window_
          from agent_list a cross join figures_periods p
    ), agent_presence as (
        select t.agent_id, t.period_start,
               sightline.seconds_of(coalesce(range_agg(s.span) filter (where s.to_state <> 'logged_out'), '{}') * t.window_) as logged_in,
               sightline.seconds_of(coalesce(range_agg(s.span) filter (where s.to_state = 'ready'), '{}') * t.window_) as ready,
               sightline.seconds_of(coalesce(range_agg(s.span) filter (where s.to_state = 'not_ready'), '{}') * t.window_) as not_ready,
               coalesce(range_agg(s.span) filter (where s.to_state = 'ready'), '{}') * t.window_ as ready_spans
          from agent_time t left join presence_spans s on s.agent_id = t.agent_id and s.span && t.window_
         group by t.agent_id, t.period_start, t.window_
    ), agent_reasons as (
        select t.agent_id, t.period_start,
               jsonb_object_agg(r.reason, r.seconds) as reasons
          from agent_time t
          join lateral (
              select s.to_reason as reason, sightline.seconds_of(range_agg(s.span) * t.window_) as seconds
                from presence_spans s
               where s.agent_id = t.agent_id and s.to_state = 'not_ready' and s.span && t.window_
               group by s.to_reason) r on r.seconds > 0
         group by t.agent_id, t.period_start
    )
    select 'queue'::text, q.id, p.period_start, p.period_end,
           jsonb_build_object(
               'offered', coalesce(c.answered + c.abandoned, 0),
               'answered', coalesce(c.answered, 0),
               'answeredWithinServiceLevel', coalesce(c.within, 0),
               'abandoned', coalesce(c.abandoned, 0),
               'shortAbandoned', coalesce(c.short, 0),
               'serviceLevelPercent', sightline.service_level_percent(coalesce(c.within, 0), coalesce(c.answered, 0),
                   coalesce(c.abandoned, 0), coalesce(c.short, 0), q.abandons_in_denominator, q.exclude_short_abandons),
               'abandonPercent', sightline.abandon_percent(coalesce(c.answered + c.abandoned, 0), coalesce(c.abandoned, 0), coalesce(c.short, 0)),
               'answerWaitSeconds', coalesce(c.answer_wait, 0),
               'asaSeconds', case when c.answered > 0 then c.answer_wait / c.answered end,
               'longestWaitSeconds', c.longest)
           || sightline.work_figures(c.handled, c.talk, c.hold, c.acw, c.held, c.transfers, c.transfers_failed)
      from sightline.queues q cross join figures_periods p
      left join queue_counts c on c.queue_id = q.id and c.period_start = p.period_start
     where p_queues is null or q.id = any (p_queues)
    union all
    select 'agent'::text, ap.agent_id, p.period_start, p.period_end,
           jsonb_build_object(
               'answered', coalesce(c.answered, 0),
               'loggedInSeconds', ap.logged_in,
               'readySeconds', ap.ready,
               'notReadySeconds', ap.not_ready,
               'notReadyReasons', coalesce(ar.reasons, '{}'::jsonb),
               'interactingReadySeconds', sightline.seconds_of(coalesce(h.spans, '{}') * ap.ready_spans),
               'occupancyPercent', case when ap.ready > 0
                   then 100.0 * sightline.seconds_of(coalesce(h.spans, '{}') * ap.ready_spans) / ap.ready end)
           || sightline.work_figures(c.handled, c.talk, c.hold, c.acw, c.held, c.transfers, c.transfers_failed)
      from agent_presence ap
      join figures_periods p on p.period_start = ap.period_start
      left join agent_counts c on c.agent_id = ap.agent_id and c.period_start = ap.period_start
      left join agent_reasons ar on ar.agent_id = ap.agent_id and ar.period_start = ap.period_start
      left join handling h on h.agent_id = ap.agent_id;
end $$;

-- How many member agents of each queue are ready, interacting on it, busy elsewhere, not ready
-- or logged out, now. Each member is in exactly one: an agent with a live interaction (ringing,
-- talking, holding, transferring, wrap-up) is interacting on the queues of those interactions and
-- busy elsewhere for the rest; otherwise its presence decides.
create function sightline.queue_staffing()
returns table (queue_id text, agents_ready integer, agents_interacting integer, agents_busy_elsewhere integer,
               agents_not_ready integer, agents_logged_out integer)
language sql stable as $$
    with busy as (
        select i.agent_id, array_agg(distinct i.queue_id) filter (where i.queue_id is not null) as queues
          from sightline.interactions i
         where i.agent_id is not null
           and (i.state in ('delivery_pending', 'delivered', 'held', 'after_call_work')
                or (i.state = 'queued' and i.transfer_to is not null))
         group by i.agent_id
    ), members as (
        select q.id as queue_id, a.id as agent_id, coalesce(p.state, 'logged_out') as presence, b.agent_id is not null as is_busy,
               coalesce(q.id = any (b.queues), false) as on_this
          from sightline.queues q
          join sightline.agents a on a.kind = 'person' and q.id = any (a.queues)
          left join sightline.agent_presence p on p.agent_id = a.id
          left join busy b on b.agent_id = a.id
    )
    select q.id,
           (count(m.agent_id) filter (where not m.is_busy and m.presence = 'ready'))::int,
           (count(m.agent_id) filter (where m.is_busy and m.on_this))::int,
           (count(m.agent_id) filter (where m.is_busy and not m.on_this))::int,
           (count(m.agent_id) filter (where not m.is_busy and m.presence = 'not_ready'))::int,
           (count(m.agent_id) filter (where not m.is_busy and m.presence = 'logged_out'))::int
      from sightline.queues q left join members m on m.queue_id = q.id
     group by q.id
$$;

-- Everything the live board shows as figures, for the interval and day of p_at (default now,
-- see sightline.current_periods): one row per
-- queue and person agent with its wire entry ({"interval", "today", "now"}), read by the live
-- server about once a second while the log moves.
create function sightline.live_figures(p_at timestamptz default null)
returns table (scope text, id text, entry text)
language plpgsql stable set jit = off as $$
#variable_conflict use_column
declare
    cp record;
begin
    select * into cp from sightline.current_periods(p_at);
    return query
    with i as (select * from sightline.figures(cp.interval_start, cp.interval_end, 'interval')),
         d as (select * from sightline.figures(cp.day_start, cp.day_end, 'day')),
         s as (select * from sightline.queue_staffing())
    select i.scope, i.id,
           (jsonb_build_object('interval', i.figures, 'today', d.figures)
            || case when i.scope = 'queue' then jsonb_build_object('now', jsonb_build_object(
                   'agentsReady', coalesce(s.agents_ready, 0), 'agentsInteracting', coalesce(s.agents_interacting, 0),
                   'agentsBusyElsewhere', coalesce(s.agents_busy_elsewhere, 0), 'agentsNotReady', coalesce(s.agents_not_ready, 0),
                   'agentsLoggedOut', coalesce(s.agents_logged_out, 0)))
               else '{}'::jsonb end)::text
      from i join d on d.scope = i.scope and d.id = i.id
      left join s on i.scope = 'queue' and s.queue_id = i.id;
end $$;
