-- The seed's transfer rules to the letter, and the facts of an interaction in one definition.
--
-- 1. Order (seed steps 1 and 2): begin_transfer logs the original's queued row first, then the
--    new interaction's idle row.
-- 2. A transfer to an agent (or a voice application) is accepted only by that target:
--      SL015 not the transfer's target
--    A transfer to a queue puts the new interaction in that queue at once (cause
--    'transfer_queued'): the writer does not repeat it.
-- 3. A wait starts when a caller enters a queue: the first queued step written by a writer or
--    by a queue transfer. The queued step of a transfer's original (cause 'transfer_started') is
--    not a wait: the caller is still with the agent. A leg that was never queued has no wait.
-- 4. An abandon is short when its wait (from entering the queue) is under the queue's
--    short_abandon_seconds (default 5). A caller who leaves before entering any queue (from idle
--    or data_collection) is abandoned with no wait and is never a short abandon: no queue was
--    offered the call. The live board and every history read the same stored or computed facts.
--
-- sightline.interaction_facts is that one definition: record_history stores it at completion,
-- and the figures (012_figures.sql) count from it.

alter table sightline.transitions drop constraint transitions_cause_check;
alter table sightline.transitions add constraint transitions_cause_check
    check (cause in ('writer', 'transfer_started', 'transfer_created', 'transfer_queued',
                     'transfer_succeeded', 'transfer_failed'));

-- The service-level choices of a queue (see the README, "Service level").
alter table sightline.queues
    add column abandons_in_denominator boolean not null default true,
    add column exclude_short_abandons  boolean not null default true,
    add column short_abandon_seconds   integer not null default 5 check (short_abandon_seconds between 1 and 3600);

drop function sightline.upsert_queue(text, text, integer, integer, integer, integer, integer);
create function sightline.upsert_queue(
    p_id text, p_name text, p_service_level_seconds integer default 20,
    p_wait_warning_seconds integer default 30, p_wait_alarm_seconds integer default 60,
    p_hold_alarm_seconds integer default 120, p_service_level_target_percent integer default 80,
    p_abandons_in_denominator boolean default true, p_exclude_short_abandons boolean default true,
    p_short_abandon_seconds integer default 5)
returns void language sql as $$
    insert into sightline.queues (id, name, service_level_seconds, wait_warning_seconds, wait_alarm_seconds,
                                  hold_alarm_seconds, service_level_target_percent, abandons_in_denominator,
                                  exclude_short_abandons, short_abandon_seconds)
    values (p_id, p_name, p_service_level_seconds, p_wait_warning_seconds, p_wait_alarm_seconds,
            p_hold_alarm_seconds, p_service_level_target_percent, coalesce(p_abandons_in_denominator, true),
            coalesce(p_exclude_short_abandons, true), coalesce(p_short_abandon_seconds, 5))
    on conflict (id) do update set name = excluded.name,
        service_level_seconds = excluded.service_level_seconds,
        wait_warning_seconds = excluded.wait_warning_seconds,
        wait_alarm_seconds = excluded.wait_alarm_seconds,
        hold_alarm_seconds = excluded.hold_alarm_seconds,
        service_level_target_percent = excluded.service_level_target_percent,
        abandons_in_denominator = excluded.abandons_in_denominator,
        exclude_short_abandons = excluded.exclude_short_abandons,
        short_abandon_seconds = excluded.short_abandon_seconds
$$;

create index interactions_completed_at on sightline.interactions (completed_at);
create index interactions_created_at on sightline.interactions (created_at);

-- The facts of interactions, from their log (live ones too: what happened so far).
--   queued_at     entering a queue (see 3 above); null if never
--   answered_at   first delivered; null if never
--   wait_seconds  queued_at to the answer, or to the completion when never answered
--   talk          time in delivered, and in queued while waiting on a transfer it started
--   hold / holds  time in held / number of holds;  acw: time in after_call_work
--   abandoned     completed, never answered, and not the new leg of a failed transfer
--   queue_abandon abandoned after entering a queue (the queue's abandon)
create function sightline.interaction_facts(p_ids bigint[])
returns table (
    interaction_id bigint, call_id text, queue_id text, agent_id text, transfer_from bigint,
    created_at timestamptz, completed_at timestamptz,
    queued_at timestamptz, answered_at timestamptz, wait_seconds double precision,
    talk double precision, hold double precision, holds integer, acw double precision,
    answered boolean, answered_within_service_level boolean,
    abandoned boolean, abandoned_from sightline.interaction_state,
    queue_abandon boolean, short_abandon boolean,
    transferred boolean, failed_transfer_leg boolean)
language sql stable as $$
    with steps as (
        select t.interaction_id, t.to_state, t.from_state, t.cause, t.at,
               lead(t.at) over (partition by t.interaction_id order by t.version) as next_at
          from sightline.transitions t where t.interaction_id = any (p_ids)
    ), agg as (
        select s.interaction_id,
               min(s.at) filter (where s.to_state = 'queued' and s.cause in ('writer', 'transfer_queued')) as queued_at,
               min(s.at) filter (where s.to_state = 'delivered') as answered_at,
               coalesce(sum(extract(epoch from s.next_at - s.at)) filter (
                   where s.to_state = 'delivered' or (s.to_state = 'queued' and s.cause = 'transfer_started')), 0)::float8 as talk,
               coalesce(sum(extract(epoch from s.next_at - s.at)) filter (where s.to_state = 'held'), 0)::float8 as hold,
               (count(*) filter (where s.to_state = 'held'))::int as holds,
               coalesce(sum(extract(epoch from s.next_at - s.at)) filter (where s.to_state = 'after_call_work'), 0)::float8 as acw,
               max(s.from_state::text) filter (where s.to_state = 'completed') as last_from
          from steps s group by s.interaction_id
    ), base as (
        select i.id, i.call_id, i.queue_id, i.agent_id, i.transfer_from, i.created_at, i.completed_at,
               a.queued_at, a.answered_at, a.talk, a.hold, a.holds, a.acw, a.last_from,
               exists (select 1 from sightline.transfers x where x.new_id = i.id and x.status = 'failed') as failed_leg,
               exists (select 1 from sightline.transfers x where x.original_id = i.id and x.status = 'succeeded') as did_transfer,
               q.service_level_seconds, q.short_abandon_seconds
          from sightline.interactions i
          join agg a on a.interaction_id = i.id
          left join sightline.queues q on q.id = i.queue_id
    ), judged as (
        select b.*,
               case when b.queued_at is not null and (b.answered_at is not null or b.completed_at is not null)
                    then extract(epoch from coalesce(b.answered_at, b.completed_at) - b.queued_at)::float8 end as wait,
               b.completed_at is not null and b.answered_at is null and not b.failed_leg as is_abandoned
          from base b
    )
    select j.id, j.call_id, j.queue_id, j.agent_id, j.transfer_from, j.created_at, j.completed_at,
           j.queued_at, j.answered_at, j.wait, j.talk, j.hold, j.holds, j.acw,
           j.answered_at is not null,
           case when j.answered_at is not null and j.queued_at is not null then j.wait <= j.service_level_seconds end,
           j.is_abandoned,
           case when j.is_abandoned then j.last_from::sightline.interaction_state end,
           j.is_abandoned and j.queued_at is not null,
           j.is_abandoned and j.queued_at is not null and j.wait < coalesce(j.short_abandon_seconds, 5),
           j.did_transfer, j.failed_leg
      from judged j
$$;

-- Statistics of a completed interaction: the facts above, stored in the completing transaction.
create or replace function sightline.record_history(p_id bigint)
returns void language sql as $$
    insert into sightline.interaction_history
    select f.interaction_id, f.call_id, f.queue_id, f.agent_id, f.transfer_from, f.created_at, f.completed_at,
           f.wait_seconds, f.talk, f.hold, f.holds, f.acw, f.answered, f.answered_within_service_level,
           f.abandoned, f.abandoned_from, f.short_abandon, f.transferred, f.failed_transfer_leg
      from sightline.interaction_facts(array[p_id]) f
$$;

-- A transfer, steps 1 and 2 of the seed, in the seed's order: the original (delivered) enters
-- queued, then a new interaction is created in idle, linked original -> new. A queue transfer's
-- new interaction enters the target queue in the same transaction. Returns the new id.
create or replace function sightline.begin_transfer(
    p_interaction bigint, p_kind text, p_target text,
    p_agent text default null, p_at timestamptz default null)
returns bigint language plpgsql as $$
declare
    r sightline.interactions;
    n sightline.interactions;
    t timestamptz;
    new_id bigint;
begin
    if p_kind is null or p_kind not in ('agent', 'queue', 'voice_application') then
        perform sightline.refuse('SL013', format('unknown transfer kind %L', p_kind),
            'kinds are: agent, queue, voice_application');
    end if;
    r := sightline.lock_interaction(p_interaction);
    if r.state <> 'delivered' then
        perform sightline.refuse('SL001', format(
            'interaction %s: a transfer starts from delivered, not from %s', r.id, r.state),
            case when r.state = 'held' then 'take it off hold first' end);
    end if;
    if p_agent is not null and p_agent <> r.agent_id then
        perform sightline.refuse('SL005', format(
            'interaction %s: its agent is %L; %L cannot transfer it', r.id, r.agent_id, p_agent));
    end if;
    if p_kind = 'queue' and not exists (select 1 from sightline.queues where id = p_target) then
        perform sightline.refuse('SL009', format('transfer of interaction %s: unknown queue %L', r.id, p_target));
    end if;
    if p_kind = 'agent' and not exists (select 1 from sightline.agents where id = p_target and kind = 'person') then
        perform sightline.refuse('SL010', format('transfer of interaction %s: unknown agent %L', r.id, p_target));
    end if;
    if p_kind = 'voice_application' and not exists (select 1 from sightline.agents where id = p_target and kind = 'voice_application') then
        perform sightline.refuse('SL010', format('transfer of interaction %s: unknown voice application %L', r.id, p_target));
    end if;
    if p_kind = 'agent' and p_target = r.agent_id then
        perform sightline.refuse('SL015', format('interaction %s: its agent %L cannot transfer it to itself', r.id, p_target));
    end if;
    t := sightline.step_time(r, p_at);
    -- The new interaction's row first (its id is needed by the original's log row), its log row
    -- after the original's.
    insert into sightline.interactions (call_id, state, transfer_from, created_at, state_since, version)
    values (r.call_id, 'idle', r.id, t, t, 1)
    returning id into new_id;
    update sightline.interactions set transfer_to = new_id where id = r.id returning * into r;
    perform sightline.apply_step(r, 'queued', t, r.agent_id, r.queue_id, null, 'transfer_started', new_id);
    insert into sightline.transitions
        (order_tx, interaction_id, version, from_state, to_state, at, cause, related_id)
    values (pg_current_xact_id(), new_id, 1, null, 'idle', t, 'transfer_created', r.id);
    insert into sightline.transfers (original_id, new_id, kind, target, started_at)
    values (r.id, new_id, p_kind, p_target, t);
    if p_kind = 'queue' then
        select * into n from sightline.interactions where id = new_id;
        perform sightline.apply_step(n, 'queued', t, null, p_target, null, 'transfer_queued', r.id);
    end if;
    return new_id;
end $$;

-- The new interaction of a transfer to an agent or a voice application is accepted only by that
-- target. apply_step is where every accepted step is written (002), so the check sits there.
create function sightline.check_transfer_target(p_interaction bigint, p_agent text)
returns void language plpgsql as $$
declare
    link sightline.transfers;
begin
    select * into link from sightline.transfers where new_id = p_interaction and status = 'pending';
    if found and link.kind in ('agent', 'voice_application') and link.target is distinct from p_agent then
        perform sightline.refuse('SL015', format(
            'interaction %s is a transfer to %s %L: only %L can accept it, not %L',
            p_interaction, replace(link.kind, '_', ' '), link.target, link.target, p_agent),
            'accept it with the target, or fail the transfer (complete this interaction) and start another');
    end if;
end $$;

-- As in 002, plus the check of a transfer's target on acceptance.
create or replace function sightline.apply_step(
    r sightline.interactions, p_to sightline.interaction_state, p_at timestamptz,
    p_agent text, p_queue text, p_held_by text, p_cause text, p_related bigint default null)
returns sightline.interactions language plpgsql as $$
declare
    prev_order xid8;
    out_row sightline.interactions;
begin
    if p_to = 'delivery_pending' and r.transfer_from is not null then
        perform sightline.check_transfer_target(r.id, p_agent);
    end if;
    select order_tx into prev_order from sightline.transitions
     where interaction_id = r.id and version = r.version;
    update sightline.interactions set
        state = p_to,
        agent_id = p_agent,
        queue_id = p_queue,
        held_by = p_held_by,
        state_since = p_at,
        queued_at = case when p_to = 'queued' then p_at else queued_at end,
        completed_at = case when p_to = 'completed' then p_at else null end,
        version = version + 1
     where id = r.id
     returning * into out_row;
    insert into sightline.transitions
        (order_tx, interaction_id, version, from_state, to_state, at, agent_id, queue_id, held_by, cause, related_id)
    values
        (greatest(pg_current_xact_id(), prev_order), r.id, out_row.version, r.state, p_to, p_at,
         p_agent, p_queue, p_held_by, p_cause, p_related);
    perform pg_notify('sightline_log', '');
    return out_row;
end $$;
