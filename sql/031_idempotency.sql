-- Writes that are safe to retry: idempotency keys.
--
-- A writer that may send a write twice (a retry after a timeout or a broken connection) gives
-- it a key. In the transaction of the write it first claims the key:
--
--   select * from sightline.claim_idempotency_key(owner, key, request);
--
-- No row: the key is new; do the write, then in the same transaction
--   select sightline.record_idempotent_result(owner, key, status, response);
-- and commit. One row (status, response): the write was done before (its transaction
-- committed); answer with that and write nothing. A concurrent claim of the same key waits for
-- the first transaction: it gets the stored result if that one commits, or the key if it rolls
-- back. `owner` separates writers (the HTTP API uses the token's name); `request` is the
-- request as text: the same key with another request is refused (SL033), nothing changes.
--
-- Keys are kept for the setting sightline.idempotency_retention (an interval, default
-- '24 hours'); older ones are removed as new keys are claimed.
--
-- Refusals: SL013 a key that is empty, longer than 200 characters or holds control
-- characters; SL033 the key was used for a different request.

create table sightline.idempotency_keys (
    owner text not null,
    key text not null,
    request_hash bytea not null,
    -- NULL only inside the claiming transaction.
    status integer,
    response text,
    created_at timestamptz not null default now(),
    primary key (owner, key)
);

create index idempotency_keys_created on sightline.idempotency_keys (created_at);

create function sightline.idempotency_retention()
returns interval language plpgsql stable as $$
declare
    raw text := current_setting('sightline.idempotency_retention', true);
begin
    if raw is null or raw = '' then
        return interval '24 hours';
    end if;
    return raw::interval;
exception when others then
    perform sightline.refuse('SL013', format('setting sightline.idempotency_retention = %L is not an interval', raw),
        'set it to an interval such as ''24 hours''');
end $$;

create function sightline.claim_idempotency_key(p_owner text, p_key text, p_request text)
returns table (status integer, response text) language plpgsql as $$
declare
    h bytea := sha256(convert_to(coalesce(p_request, ''), 'UTF8'));
    retention interval := sightline.idempotency_retention();
    stored record;
begin
    if p_key is null or length(p_key) not between 1 and 200 or p_key ~ '[[:cntrl:]]' then
        perform sightline.refuse('SL013', 'an idempotency key must be 1 to 200 characters without control characters');
    end if;
    delete from sightline.idempotency_keys k
     where k.ctid in (select ctid from sightline.idempotency_keys where created_at < now() - retention limit 100);
    delete from sightline.idempotency_keys k
     where k.owner = coalesce(p_owner, '') and k.key = p_key and k.created_at < now() - retention;
    insert into sightline.idempotency_keys (owner, key, request_hash) values (coalesce(p_owner, ''), p_key, h)
    on conflict do nothing;
    if found then
        return;
    end if;
    select k.request_hash, k.status, k.response into stored
      from sightline.idempotency_keys k where k.owner = coalesce(p_owner, '') and k.key = p_key;
    if stored.request_hash <> h then
        perform sightline.refuse('SL033', format('idempotency key %L was used for a different request', p_key),
            'use a new key for a new request');
    end if;
    return query select stored.status, stored.response;
end $$;

create function sightline.record_idempotent_result(p_owner text, p_key text, p_status integer, p_response text)
returns void language plpgsql as $$
begin
    update sightline.idempotency_keys set status = p_status, response = p_response
     where owner = coalesce(p_owner, '') and key = p_key;
end $$;
