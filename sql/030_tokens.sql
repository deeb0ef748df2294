-- Access tokens with roles, stored hashed.
--
-- A token is a random secret handed to one client once (`sightline token create`); only its
-- SHA-256 is stored, so a copy of the database does not give access. Every token has a name,
-- a role and optionally an expiry and a queue scope:
--
--   ingest       writes interactions (POST /api/interactions, transitions, transfers, batch)
--   supervisor   reads the board, history and caller paths; with queues: only those queues
--   wallboard    aggregate queue figures on the live stream only (no call id, caller path,
--                agent name or per-call detail); with queues: only those queues
--   admin        everything: queues, agents, tokens, and every read and write
--
-- Writers that are not the server use the same functions, e.g. in psql:
--   select sightline.create_token('acd-1', 'ingest', null, now() + interval '90 days',
--                                 sha256(convert_to('the secret', 'UTF8')));
--   select sightline.revoke_token('acd-1');
--
-- Refusals (SQLSTATE, like the life cycle's):
--   SL013 bad argument     a name that is empty, too long or holds control characters; a hash
--                          that is not 32 bytes; an expiry that is not in the future; a queue
--                          scope on a role that has none
--   SL009 unknown queue    a scope naming a queue that does not exist
--   SL030 unknown role     a role other than the four above
--   SL031 token exists     an active token already has this name
--   SL032 unknown token    no active token has this name (revoke)
--
-- Changes send NOTIFY sightline_tokens, so a live server reloads its tokens at once (and
-- closes the streams of revoked tokens); it also rereads them every second for expiries.

create table sightline.tokens (
    id bigint generated always as identity primary key,
    name text not null,
    role text not null,
    -- NULL: every queue.
    queues text[],
    hash bytea not null unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz
);

create unique index tokens_active_name on sightline.tokens (name) where revoked_at is null;

-- The one definition of a token's standing: active, expired or revoked.
create view sightline.token_status as
select id, name, role, queues, hash, created_at, expires_at, revoked_at,
       case when revoked_at is not null then 'revoked'
            when expires_at is not null and expires_at <= now() then 'expired'
            else 'active' end as status
  from sightline.tokens;

create function sightline.create_token(p_name text, p_role text, p_queues text[], p_expires_at timestamptz, p_hash bytea)
returns bigint language plpgsql as $$
declare
    new_id bigint;
    missing text;
begin
    if p_name is null or length(p_name) not between 1 and 64 or p_name ~ '[[:cntrl:]]' then
        perform sightline.refuse('SL013', 'a token name must be 1 to 64 characters without control characters');
    end if;
    if p_role is null or p_role not in ('ingest', 'supervisor', 'wallboard', 'admin') then
        perform sightline.refuse('SL030', format('unknown role %L', p_role), 'roles: ingest, supervisor, wallboard, admin');
    end if;
    if p_hash is null or length(p_hash) <> 32 then
        perform sightline.refuse('SL013', 'the token hash must be the 32 bytes of a SHA-256');
    end if;
    if p_expires_at is not null and (not isfinite(p_expires_at) or p_expires_at <= now()) then
        perform sightline.refuse('SL013', format('expiry %s is not a time in the future', p_expires_at));
    end if;
    if p_queues is not null then
        if p_role not in ('supervisor', 'wallboard') then
            perform sightline.refuse('SL013', format('a %s token has no queue scope', p_role),
                'only supervisor and wallboard tokens are limited to queues');
        end if;
        if cardinality(p_queues) = 0 then
            perform sightline.refuse('SL013', 'a queue scope names at least one queue', 'leave it out for every queue');
        end if;
        select q into missing from unnest(p_queues) q where not exists (select 1 from sightline.queues where id = q) limit 1;
        if found then
            perform sightline.refuse('SL009', format('unknown queue %L', missing), 'create the queue first');
        end if;
    end if;
    if exists (select 1 from sightline.tokens where name = p_name and revoked_at is null) then
        perform sightline.refuse('SL031', format('a token named %L exists', p_name), 'revoke it first, or choose another name');
    end if;
    insert into sightline.tokens (name, role, queues, hash, expires_at)
    values (p_name, p_role, p_queues, p_hash, p_expires_at)
    returning id into new_id;
    return new_id;
end $$;

create function sightline.revoke_token(p_name text)
returns bigint language plpgsql as $$
declare
    revoked bigint;
begin
    update sightline.tokens set revoked_at = now() where name = p_name and revoked_at is null returning id into revoked;
    if revoked is null then
        perform sightline.refuse('SL032', format('no active token named %L', p_name), 'sightline token list shows them');
    end if;
    return revoked;
end $$;

-- NOTIFY on the channel named by the trigger's argument.
create function sightline.notify_channel()
returns trigger language plpgsql as $$
begin
    perform pg_notify(tg_argv[0], '');
    return null;
end $$;

create trigger tokens_notify
    after insert or update or delete or truncate on sightline.tokens
    for each statement execute function sightline.notify_channel('sightline_tokens');
