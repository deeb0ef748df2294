-- Alert decisions are kept for a retention period after they are settled, then trimmed, so the
-- outbox (and sightline.active_alerts, which reads all of it) stays small on a server that runs
-- for months. The live server's alert thread calls sightline.trim_alert_outbox at start-up and
-- every hour with its --alert-retention-days (default 30).
--
-- Trimmed: an event decided more than p_keep ago whose deliveries are all settled (delivered or
-- dead), unless it is the latest decision of an alert still firing (that row is the alert's
-- state: a restart restores the alert from it). Its delivery rows go with it (on delete
-- cascade), dead letters included: they were listed for the whole retention period.
-- At most p_limit events per call, oldest first; returns how many were trimmed.

create function sightline.trim_alert_outbox(p_keep interval, p_limit integer default 10000)
returns bigint language plpgsql as $$
declare
    trimmed bigint;
begin
    if p_keep is null or p_keep < interval '0' or p_limit is null or p_limit < 1 then
        perform sightline.refuse('SL013', format('alert retention %s (limit %s) is not an interval of 0 or more with a limit of 1 or more', p_keep, p_limit),
            'pass the retention as an interval such as ''30 days''');
    end if;
    with doomed as (
        select e.seq
          from sightline.alert_events e
         where e.decided_at < now() - p_keep
           and not exists (select 1 from sightline.alert_deliveries d where d.event_seq = e.seq and d.status = 'pending')
           and not exists (select 1 from sightline.active_alerts a where a.seq = e.seq)
         order by e.seq
         limit p_limit)
    delete from sightline.alert_events e using doomed where e.seq = doomed.seq;
    get diagnostics trimmed = row_count;
    return trimmed;
end $$;
