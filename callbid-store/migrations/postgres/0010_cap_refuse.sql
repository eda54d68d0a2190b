-- v10: lets one pipelined round trip carry a whole cap reservation (BEGIN, insert,
-- upserts, COMMIT; see reserve_inner in src/postgres/mod.rs). A statement that must stop
-- the reservation raises through this function with its own SQLSTATE (CBDUP: the id is
-- already reserved; CBCAP: a counter would pass its limit), which aborts the transaction,
-- so the COMMIT already sent behind it rolls back.
CREATE FUNCTION callbid_refuse(code TEXT, detail TEXT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = detail;
END
$$;
