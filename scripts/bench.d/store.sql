-- One caller through the store's functions: 7 validated transitions, each its own
-- (autocommit) transaction. pgbench reports script runs per second; transitions/s = 7 x that.
\set n random(1, 1000000000)
select sightline.create_interaction('bench-' || :n) as iid \gset
select sightline.transition(:iid, 'queued', p_queue => 'bench');
select sightline.transition(:iid, 'delivery_pending', 'bench-agent');
select sightline.transition(:iid, 'delivered');
select sightline.transition(:iid, 'held', 'bench-agent');
select sightline.transition(:iid, 'delivered', 'bench-agent');
select sightline.transition(:iid, 'after_call_work');
select sightline.transition(:iid, 'completed');
