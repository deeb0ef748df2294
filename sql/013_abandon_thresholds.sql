-- Abandon-rate thresholds of a queue: the board's tile turns to warning at
-- abandon_warning_percent and to alarm at abandon_alarm_percent of today's abandon rate
-- (sightline.abandon_percent), and the abandon_rate alert takes abandon_alarm_percent as its
-- default threshold. Null: the queue's abandon rate is not judged (the alert keeps its own
-- default). Refused (SL013) when out of 1..100 or when the warning is above the alarm.

alter table sightline.queues
    add column abandon_warning_percent integer check (abandon_warning_percent between 1 and 100),
    add column abandon_alarm_percent   integer check (abandon_alarm_percent between 1 and 100),
    add constraint queues_abandon_thresholds_order
        check (abandon_warning_percent is null or abandon_alarm_percent is null
               or abandon_warning_percent <= abandon_alarm_percent);

drop function sightline.upsert_queue(text, text, integer, integer, integer, integer, integer, boolean, boolean, integer);
create function sightline.upsert_queue(
    p_id text, p_name text, p_service_level_seconds integer default 20,
    p_wait_warning_seconds integer default 30, p_wait_alarm_seconds integer default 60,
    p_hold_alarm_seconds integer default 120, p_service_level_target_percent integer default 80,
    p_abandons_in_denominator boolean default true, p_exclude_short_abandons boolean default true,
    p_short_abandon_seconds integer default 5,
    p_abandon_warning_percent integer default null, p_abandon_alarm_percent integer default null)
returns void language plpgsql as $$
begin
    if p_abandon_warning_percent is not null and p_abandon_warning_percent not between 1 and 100
       or p_abandon_alarm_percent is not null and p_abandon_alarm_percent not between 1 and 100 then
        perform sightline.refuse('SL013', format('queue %s: abandon thresholds %s / %s are not percentages from 1 to 100',
            p_id, p_abandon_warning_percent, p_abandon_alarm_percent), 'pass whole percentages from 1 to 100, or null');
    end if;
    if p_abandon_warning_percent > p_abandon_alarm_percent then
        perform sightline.refuse('SL013', format('queue %s: abandon warning %s%% is above its alarm %s%%',
            p_id, p_abandon_warning_percent, p_abandon_alarm_percent), 'the warning must be at most the alarm');
    end if;
    insert into sightline.queues (id, name, service_level_seconds, wait_warning_seconds, wait_alarm_seconds,
                                  hold_alarm_seconds, service_level_target_percent, abandons_in_denominator,
                                  exclude_short_abandons, short_abandon_seconds,
                                  abandon_warning_percent, abandon_alarm_percent)
    values (p_id, p_name, p_service_level_seconds, p_wait_warning_seconds, p_wait_alarm_seconds,
            p_hold_alarm_seconds, p_service_level_target_percent, coalesce(p_abandons_in_denominator, true),
            coalesce(p_exclude_short_abandons, true), coalesce(p_short_abandon_seconds, 5),
            p_abandon_warning_percent, p_abandon_alarm_percent)
    on conflict (id) do update set name = excluded.name,
        service_level_seconds = excluded.service_level_seconds,
        wait_warning_seconds = excluded.wait_warning_seconds,
        wait_alarm_seconds = excluded.wait_alarm_seconds,
        hold_alarm_seconds = excluded.hold_alarm_seconds,
        service_level_target_percent = excluded.service_level_target_percent,
        abandons_in_denominator = excluded.abandons_in_denominator,
        exclude_short_abandons = excluded.exclude_short_abandons,
        short_abandon_seconds = excluded.short_abandon_seconds,
        abandon_warning_percent = excluded.abandon_warning_percent,
        abandon_alarm_percent = excluded.abandon_alarm_percent;
end $$;
