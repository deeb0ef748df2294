-- The figures the alert rules service_level and abandon_rate judge: per queue, the 15-minute
-- intervals of sightline.figures that overlap the last p_seconds, added up, with the service
-- level and abandon rate of the sum computed by the same functions as every other figure
-- (sightline.service_level_percent with the queue's own choices, sightline.abandon_percent).
-- The live server reads it off its event loop every few seconds; the rules only compare.
create function sightline.alert_window_figures(p_seconds double precision)
returns table (queue_id text, offered bigint, service_level_percent double precision, abandon_percent double precision)
language sql stable as $$
    with f as (
        select f.id, (f.figures->>'offered')::bigint as offered, (f.figures->>'answered')::bigint as answered,
               (f.figures->>'answeredWithinServiceLevel')::bigint as within, (f.figures->>'abandoned')::bigint as abandoned,
               (f.figures->>'shortAbandoned')::bigint as short
          from sightline.figures(clock_timestamp() - make_interval(secs => greatest(p_seconds, 1)), clock_timestamp(), 'interval') f
         where f.scope = 'queue')
    select q.id, sum(f.offered)::bigint,
           sightline.service_level_percent(sum(f.within)::bigint, sum(f.answered)::bigint, sum(f.abandoned)::bigint,
                                           sum(f.short)::bigint, q.abandons_in_denominator, q.exclude_short_abandons),
           sightline.abandon_percent(sum(f.offered)::bigint, sum(f.abandoned)::bigint, sum(f.short)::bigint)
      from f join sightline.queues q on q.id = f.id
     group by q.id, q.abandons_in_denominator, q.exclude_short_abandons
$$;
