-- v13: group commit of cap reservations (see src/postgres/reserve.rs). Concurrent
-- reservations on one store handle are decided by one call of this function in one
-- transaction, so they share one commit (one WAL flush) instead of one each.
--
-- The batch comes as parallel arrays. Per request i (in queue order): ids[i],
-- expires[i] (ns, NULL: never), nows[i] (ns); its increments are positions
-- inc_start[i] .. inc_start[i + 1] - 1 of inc_slot (a 1-based index into keys, the
-- batch's distinct counters in byte order), inc_amount and inc_limit, in key order.
--
-- 1. Every counter's row is created (used 0) if missing and locked, one counter at a
--    time in byte order, so two batches (on two processes) never deadlock.
-- 2. The requests are decided one after the other, in memory, as each would be alone
--    after the ones before it: an id already held (stored, or granted earlier in the
--    batch) is Reserved and counts once; an amount above its limit is refused (first
--    such counter in key order); otherwise a counter whose usage (its stored total
--    minus the increments expired at the request's now, the batch's own grants
--    included) plus the amount would pass the limit refuses it (first in key order);
--    otherwise it is granted.
-- 3. The grants are written set-based (reservations in id order, so two batches never
--    wait on each other's ids in a cycle), and each changed counter is updated once.
--
-- Returns one row per request: r_key NULL for Reserved, else the refusing counter with
-- its usage before the request and its limit. Nothing is decided by raising, so no
-- subtransactions; any error fails the whole batch (nothing is written) and the caller
-- decides each request alone. (callbid_refuse, v10, is no longer called by reserve.)
CREATE FUNCTION callbid_reserve_batch(
    ids TEXT[], expires BIGINT[], nows BIGINT[], keys TEXT[],
    inc_start INT[], inc_slot INT[], inc_amount NUMERIC[], inc_limit NUMERIC[])
RETURNS TABLE (r_n INT, r_key TEXT, r_used NUMERIC, r_limit NUMERIC)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    nkeys   INT := coalesce(array_length(keys, 1), 0);
    totals  NUMERIC[] := '{}';  -- each counter's stored total, grants so far included
    was     NUMERIC[];
    total   NUMERIC;
    expiry  BIGINT;
    soonest BIGINT[] := '{}';   -- earliest stored expiry per counter (NULL: none)
    held    TEXT[];
    cur     NUMERIC[] := '{}';  -- usage per slot for the current request
    g_ids TEXT[] := '{}'; g_exp BIGINT[] := '{}';
    gi_id TEXT[] := '{}'; gi_slot INT[] := '{}'; gi_amount NUMERIC[] := '{}';
    gi_exp BIGINT[] := '{}';
    g_soonest BIGINT[] := '{}'; -- earliest expiry among the batch's grants per counter
    i INT; j INT; s INT; q INT;
    refuse INT;
BEGIN
    FOR s IN 1 .. nkeys LOOP
        INSERT INTO cap_counters AS c (counter, used) VALUES (keys[s], 0)
            ON CONFLICT (counter) DO NOTHING;
        SELECT c.used INTO total FROM cap_counters c WHERE c.counter = keys[s] FOR UPDATE;
        SELECT min(x.expires_ns) INTO expiry FROM cap_increments x
            WHERE x.counter = keys[s] AND x.expires_ns IS NOT NULL;
        totals[s] := total;
        soonest[s] := expiry;
        g_soonest[s] := NULL;
    END LOOP;
    was := totals;
    SELECT coalesce(array_agg(r.id), '{}') INTO held FROM cap_reservations r WHERE r.id = ANY (ids);
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        r_n := i; r_key := NULL; r_used := NULL; r_limit := NULL;
        IF ids[i] = ANY (held) THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- Usage of each of the request's counters at its now.
        FOR j IN inc_start[i] .. inc_start[i + 1] - 1 LOOP
            s := inc_slot[j];
            cur[s] := totals[s];
            IF soonest[s] <= nows[i] THEN
                cur[s] := cur[s] - (SELECT coalesce(sum(x.amount), 0) FROM cap_increments x
                    WHERE x.counter = keys[s] AND x.expires_ns IS NOT NULL
                    AND x.expires_ns <= nows[i]);
            END IF;
            IF g_soonest[s] <= nows[i] THEN
                FOR q IN 1 .. coalesce(array_length(gi_id, 1), 0) LOOP
                    IF gi_slot[q] = s AND gi_exp[q] <= nows[i] THEN
                        cur[s] := cur[s] - gi_amount[q];
                    END IF;
                END LOOP;
            END IF;
        END LOOP;
        refuse := NULL;
        FOR j IN inc_start[i] .. inc_start[i + 1] - 1 LOOP
            IF inc_amount[j] > inc_limit[j] THEN
                refuse := j;
                EXIT;
            END IF;
        END LOOP;
        IF refuse IS NULL THEN
            FOR j IN inc_start[i] .. inc_start[i + 1] - 1 LOOP
                IF cur[inc_slot[j]] + inc_amount[j] > inc_limit[j] THEN
                    refuse := j;
                    EXIT;
                END IF;
            END LOOP;
        END IF;
        IF refuse IS NOT NULL THEN
            r_key := keys[inc_slot[refuse]];
            r_used := cur[inc_slot[refuse]];
            r_limit := inc_limit[refuse];
            RETURN NEXT;
            CONTINUE;
        END IF;
        FOR j IN inc_start[i] .. inc_start[i + 1] - 1 LOOP
            s := inc_slot[j];
            totals[s] := totals[s] + inc_amount[j];
            gi_id := gi_id || ids[i];
            gi_slot := gi_slot || s;
            gi_amount := gi_amount || inc_amount[j];
            gi_exp := gi_exp || expires[i];
            IF expires[i] IS NOT NULL THEN
                g_soonest[s] := least(g_soonest[s], expires[i]);
            END IF;
        END LOOP;
        g_ids := g_ids || ids[i];
        g_exp := g_exp || expires[i];
        held := held || ids[i];
        RETURN NEXT;
    END LOOP;
    INSERT INTO cap_reservations (id, expires_ns)
        SELECT u.id, u.e FROM unnest(g_ids, g_exp) AS u (id, e) ORDER BY u.id COLLATE "C";
    INSERT INTO cap_increments (reservation_id, counter, amount, expires_ns)
        SELECT u.id, keys[u.slot], u.a, u.e FROM unnest(gi_id, gi_slot, gi_amount, gi_exp) AS u (id, slot, a, e);
    UPDATE cap_counters c SET used = t.now_total
        FROM unnest(keys, totals, was) AS t (k, now_total, old_total)
        WHERE c.counter = t.k AND t.now_total <> t.old_total;
END
$$;
