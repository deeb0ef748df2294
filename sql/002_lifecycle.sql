-- The interaction life cycle, enforced for every writer (the server, an ACD writing SQL, a
-- person in psql). Each refusal raises an error with its own SQLSTATE (class SL) and a message
-- naming the interaction, the states and the rule, and changes nothing.
--
--   SL001 illegal transition         SL008 transfer rule
--   SL002 unknown interaction        SL009 unknown queue
--   SL003 unknown state name         SL010 unknown agent
--   SL004 agent required             SL011 queue required
--   SL005 agent mismatch             SL012 queue fixed
--   SL006 not the holding agent      SL013 bad argument
--   SL007 time before last transition

create function sightline.refuse(code text, msg text, hint text default null)
returns void language plpgsql as $$
begin
    if hint is null then
        raise exception using errcode = code, message = msg;
    end if;
    raise exception using errcode = code, message = msg, hint = hint;
end $$;

create function sightline.parse_state(p_state text)
returns sightline.interaction_state language plpgsql immutable as $$
begin
    if p_state is null or not (p_state = any (enum_range(null::sightline.interaction_state)::text[])) then
        perform sightline.refuse('SL003', format('unknown state %L', p_state),
            'states are: ' || array_to_string(enum_range(null::sightline.interaction_state)::text[], ', '));
    end if;
    return p_state::sightline.interaction_state;
end $$;

create function sightline.allowed_next(p_from sightline.interaction_state)
returns text language sql stable as $$
    select coalesce(string_agg(to_state::text, ', ' order by to_state), 'nothing')
    from sightline.transition_rules where from_state = p_from and kind = 'writer'
$$;

-- The time of a step: the writer's, which may not be earlier than the last transition, or now.
create function sightline.step_time(r sightline.interactions, p_at timestamptz)
returns timestamptz language plpgsql stable as $$
begin
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

-- Append one step to the log and update the interaction. No rule checks: callers check.
create function sightline.apply_step(
    r sightline.interactions, p_to sightline.interaction_state, p_at timestamptz,
    p_agent text, p_queue text, p_held_by text, p_cause text, p_related bigint default null)
returns sightline.interactions language plpgsql as $$
declare
    prev_order xid8;
    out_row sightline.interactions;
begin
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

create function sightline.create_row(p_call_id text, p_at timestamptz, p_transfer_from bigint, p_cause text)
returns bigint language plpgsql as $$
declare
    new_id bigint;
    t timestamptz := coalesce(p_at, clock_timestamp());
begin
    if p_call_id is null or length(p_call_id) not between 1 and 128 then
        perform sightline.refuse('SL013', 'call id must be 1 to 128 characters');
    end if;
    insert into sightline.interactions (call_id, state, transfer_from, created_at, state_since, version)
    values (p_call_id, 'idle', p_transfer_from, t, t, 1)
    returning id into new_id;
    insert into sightline.transitions
        (order_tx, interaction_id, version, from_state, to_state, at, cause, related_id)
    values (pg_current_xact_id(), new_id, 1, null, 'idle', t, p_cause, p_transfer_from);
    perform pg_notify('sightline_log', '');
    return new_id;
end $$;

-- A call arrives: a new interaction in idle.
create function sightline.create_interaction(p_call_id text, p_at timestamptz default null)
returns bigint language sql as $$
    select sightline.create_row(p_call_id, p_at, null, 'writer')
$$;

create function sightline.lock_interaction(p_id bigint)
returns sightline.interactions language plpgsql as $$
declare
    r sightline.interactions;
begin
    select * into r from sightline.interactions where id = p_id for update;
    if not found then
        perform sightline.refuse('SL002', format('unknown interaction %s', p_id),
            'create it first with sightline.create_interaction');
    end if;
    return r;
end $$;

-- Statistics of a completed interaction, from its log (one definition; the Swift model's
-- InteractionStatistics must agree, which a test checks).
create function sightline.record_history(p_id bigint)
returns void language plpgsql as $$
declare
    r sightline.interactions;
    sl integer;
    first_queued timestamptz;
    first_delivered timestamptz;
    talk double precision;
    hold double precision;
    holds integer;
    acw double precision;
    last_from sightline.interaction_state;
    failed_leg boolean;
    did_transfer boolean;
    wait double precision;
    is_abandoned boolean;
begin
    select * into r from sightline.interactions where id = p_id;
    with steps as (
        select to_state, from_state, at, lead(at) over (order by version) as next_at
        from sightline.transitions where interaction_id = p_id
    )
    select min(at) filter (where to_state = 'queued'),
           min(at) filter (where to_state = 'delivered'),
           coalesce(sum(extract(epoch from next_at - at)) filter (where to_state = 'delivered'), 0),
           coalesce(sum(extract(epoch from next_at - at)) filter (where to_state = 'held'), 0),
           count(*) filter (where to_state = 'held'),
           coalesce(sum(extract(epoch from next_at - at)) filter (where to_state = 'after_call_work'), 0),
           max(from_state::text) filter (where to_state = 'completed')
      into first_queued, first_delivered, talk, hold, holds, acw, last_from
      from steps;
    select exists (select 1 from sightline.transfers where new_id = p_id and status = 'failed') into failed_leg;
    select exists (select 1 from sightline.transfers where original_id = p_id and status = 'succeeded') into did_transfer;
    select service_level_seconds into sl from sightline.queues where id = r.queue_id;
    is_abandoned := first_delivered is null and not failed_leg;
    if first_queued is not null then
        wait := extract(epoch from coalesce(first_delivered, r.completed_at) - first_queued);
    end if;
    insert into sightline.interaction_history values (
        r.id, r.call_id, r.queue_id, r.agent_id, r.transfer_from, r.created_at, r.completed_at,
        wait, talk, hold, holds, acw,
        first_delivered is not null,
        case when first_delivered is not null and first_queued is not null and sl is not null
             then wait <= sl end,
        is_abandoned,
        case when is_abandoned then last_from end,
        is_abandoned and extract(epoch from r.completed_at - coalesce(first_queued, r.created_at)) < 5,
        did_transfer,
        failed_leg);
end $$;

-- Move an interaction to another state. p_agent: the agent acting (required to accept, hold and
-- unhold). p_queue: the queue, when entering queued. p_at: when it happened (default now).
create function sightline.transition(
    p_interaction bigint, p_to text,
    p_agent text default null, p_queue text default null, p_at timestamptz default null)
returns sightline.transitions language plpgsql as $$
declare
    r sightline.interactions;
    target sightline.interaction_state := sightline.parse_state(p_to);
    rule_kind text;
    t timestamptz;
    new_agent text;
    new_queue text;
    new_held_by text;
    link sightline.transfers;
    orig sightline.interactions;
    result sightline.transitions;
begin
    r := sightline.lock_interaction(p_interaction);
    select kind into rule_kind from sightline.transition_rules where from_state = r.state and to_state = target;

    if r.state = 'queued' and r.transfer_to is not null then
        perform sightline.refuse('SL008', format(
            'interaction %s: %s -> %s refused: it is the original of a transfer to interaction %s in progress, and its next state follows that interaction',
            r.id, r.state, target, r.transfer_to),
            format('move interaction %s: delivered completes the transfer (this one goes to after_call_work), completed fails it (this one returns to delivered)', r.transfer_to));
    end if;
    if rule_kind is null or rule_kind = 'transfer_outcome' then
        perform sightline.refuse('SL001', format('interaction %s: %s -> %s is not allowed', r.id, r.state, target),
            format('from %s it may go to %s', r.state, sightline.allowed_next(r.state)));
    end if;
    if rule_kind = 'transfer_begin' then
        perform sightline.refuse('SL008', format(
            'interaction %s: %s -> %s happens only as the first step of a transfer', r.id, r.state, target),
            'call sightline.begin_transfer(interaction, kind, target)');
    end if;

    t := sightline.step_time(r, p_at);
    new_agent := r.agent_id;
    new_queue := r.queue_id;
    new_held_by := null;

    -- Only the agent who put the call on hold takes it off hold.
    if r.state = 'held' then
        if p_agent is null then
            perform sightline.refuse('SL004', format('interaction %s: taking off hold needs the agent', r.id), 'pass the agent id');
        end if;
        if p_agent <> r.held_by then
            perform sightline.refuse('SL006', format(
                'interaction %s: only %L, who put it on hold, can take it off hold (not %L)', r.id, r.held_by, p_agent));
        end if;
    end if;

    -- The one agent: fixed at acceptance, the only one who may act afterwards.
    if target = 'delivery_pending' then
        if p_agent is null then
            perform sightline.refuse('SL004', format('interaction %s: accepting (-> delivery_pending) needs the accepting agent', r.id),
                'pass the agent id');
        end if;
        if not exists (select 1 from sightline.agents where id = p_agent) then
            perform sightline.refuse('SL010', format('interaction %s: unknown agent %L', r.id, p_agent), 'register the agent first');
        end if;
        new_agent := p_agent;
    elsif p_agent is not null and r.agent_id is null then
        perform sightline.refuse('SL005', format(
            'interaction %s: agent %L cannot act on it: it has no agent until one accepts it (delivery_pending)', r.id, p_agent));
    elsif p_agent is not null and p_agent <> r.agent_id then
        perform sightline.refuse('SL005', format(
            'interaction %s: its agent is %L, fixed at acceptance; %L cannot act on it', r.id, r.agent_id, p_agent));
    end if;

    if target = 'held' then
        if p_agent is null then
            perform sightline.refuse('SL004', format('interaction %s: putting on hold needs the holding agent', r.id), 'pass the agent id');
        end if;
        new_held_by := p_agent;
    end if;

    -- The queue: chosen when entering queued.
    if target = 'queued' then
        new_queue := coalesce(p_queue, r.queue_id);
        if new_queue is null then
            perform sightline.refuse('SL011', format('interaction %s: entering queued needs a queue', r.id), 'pass the queue id');
        end if;
        if not exists (select 1 from sightline.queues where id = new_queue) then
            perform sightline.refuse('SL009', format('interaction %s: unknown queue %L', r.id, new_queue), 'create the queue first');
        end if;
    elsif p_queue is not null and p_queue is distinct from r.queue_id then
        perform sightline.refuse('SL012', format(
            'interaction %s: its queue is set only when it enters queued (now %s, queue %s)', r.id, r.state, coalesce(r.queue_id, 'none')));
    end if;

    r := sightline.apply_step(r, target, t, new_agent, new_queue, new_held_by, 'writer');
    select * into result from sightline.transitions where interaction_id = r.id and version = r.version;

    -- The new interaction of a transfer decides the original's next state.
    if r.transfer_from is not null and target in ('delivered', 'completed') then
        select * into link from sightline.transfers where new_id = r.id and status = 'pending' for update;
        if found then
            orig := sightline.lock_interaction(link.original_id);
            update sightline.interactions set transfer_to = null where id = orig.id returning * into orig;
            if target = 'delivered' then
                update sightline.transfers set status = 'succeeded', ended_at = t where id = link.id;
                perform sightline.apply_step(orig, 'after_call_work', greatest(t, orig.state_since),
                    orig.agent_id, orig.queue_id, null, 'transfer_succeeded', r.id);
            else
                update sightline.transfers set status = 'failed', ended_at = t where id = link.id;
                perform sightline.apply_step(orig, 'delivered', greatest(t, orig.state_since),
                    orig.agent_id, orig.queue_id, null, 'transfer_failed', r.id);
            end if;
        end if;
    end if;

    if target = 'completed' then
        perform sightline.record_history(r.id);
    end if;
    return result;
end $$;

-- A transfer, step 1 and 2 of the seed: the original (delivered) enters queued, and a new
-- interaction is created in idle, linked original -> new. p_kind: 'agent', 'queue' or
-- 'voice_application'; p_target: that agent, queue or voice application. Returns the new id.
create function sightline.begin_transfer(
    p_interaction bigint, p_kind text, p_target text,
    p_agent text default null, p_at timestamptz default null)
returns bigint language plpgsql as $$
declare
    r sightline.interactions;
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
    t := sightline.step_time(r, p_at);
    new_id := sightline.create_row(r.call_id, t, r.id, 'transfer_created');
    update sightline.interactions set transfer_to = new_id where id = r.id returning * into r;
    perform sightline.apply_step(r, 'queued', t, r.agent_id, r.queue_id, null, 'transfer_started', new_id);
    insert into sightline.transfers (original_id, new_id, kind, target, started_at)
    values (r.id, new_id, p_kind, p_target, t);
    return new_id;
end $$;

-- Queues and agents: create or update.
create function sightline.upsert_queue(
    p_id text, p_name text, p_service_level_seconds integer default 20,
    p_wait_warning_seconds integer default 30, p_wait_alarm_seconds integer default 60,
    p_hold_alarm_seconds integer default 120, p_service_level_target_percent integer default 80)
returns void language sql as $$
    insert into sightline.queues (id, name, service_level_seconds, wait_warning_seconds, wait_alarm_seconds,
                                  hold_alarm_seconds, service_level_target_percent)
    values (p_id, p_name, p_service_level_seconds, p_wait_warning_seconds, p_wait_alarm_seconds,
            p_hold_alarm_seconds, p_service_level_target_percent)
    on conflict (id) do update set name = excluded.name,
        service_level_seconds = excluded.service_level_seconds,
        wait_warning_seconds = excluded.wait_warning_seconds,
        wait_alarm_seconds = excluded.wait_alarm_seconds,
        hold_alarm_seconds = excluded.hold_alarm_seconds,
        service_level_target_percent = excluded.service_level_target_percent
$$;

create function sightline.upsert_agent(p_id text, p_name text, p_queues text[] default '{}', p_kind text default 'person')
returns void language sql as $$
    insert into sightline.agents (id, name, queues, kind) values (p_id, p_name, coalesce(p_queues, '{}'), p_kind)
    on conflict (id) do update set name = excluded.name, queues = excluded.queues, kind = excluded.kind
$$;
