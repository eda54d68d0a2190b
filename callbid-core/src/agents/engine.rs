//! [`AgentStore`] written once over [`AgentDocs`]: every change is read → pure transition
//! (the model) → compare-and-set, retried on a lost race.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;

use super::metrics::metrics_of;
use super::model::*;
use super::*;
use crate::error::{StateError, ValidationError};

/// Compare-and-set attempts before giving up (each lost race means someone else
/// progressed, so this is only reached under pathological contention).
const CAS_ATTEMPTS: usize = 64;

fn contended(operation: &'static str) -> StateError {
    StateError::Unavailable {
        store: "agents",
        operation,
        message: format!("lost {CAS_ATTEMPTS} compare-and-set races in a row"),
    }
}

fn unknown(field: &'static str, value: &str) -> StateError {
    StateError::Invalid(ValidationError::new(
        field,
        value,
        format!("no such {field}"),
    ))
}

fn after(at: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

async fn pool_of<D: AgentDocs + ?Sized>(d: &D, id: &AgentPoolId) -> Result<AgentPool, StateError> {
    d.pool_doc(id)
        .await?
        .ok_or_else(|| unknown("pool", id.as_str()))
}

async fn offer_of<D: AgentDocs + ?Sized>(
    d: &D,
    pool: &AgentPoolId,
    id: &OfferId,
) -> Result<Versioned<Offer>, StateError> {
    d.offer_doc(pool, id)
        .await?
        .ok_or_else(|| unknown("offer", id.as_str()))
}

/// Claims up to `max_legs` available agents of the lowest tier above `after_tier` that has
/// any for `needs`; each claim is a compare-and-set of the agent to `offered` until `until`.
async fn claim<D: AgentDocs + ?Sized>(
    d: &D,
    pool: &AgentPool,
    offer: &OfferId,
    needs: &Needs,
    after_tier: u8,
    now: DateTime<Utc>,
) -> Result<Option<(u8, Vec<(AgentId, Reach)>)>, StateError> {
    let until = after(now, pool.offer_ttl);
    let mut tiers: BTreeMap<u8, Vec<Versioned<AgentRecord>>> = BTreeMap::new();
    for v in d.agent_docs(&pool.id).await? {
        let a = &v.value;
        if a.agent.tier > after_tier
            && a.presence.at(now) == Presence::Available
            && a.agent.handles(needs, now)
        {
            tiers.entry(a.agent.tier).or_default().push(v);
        }
    }
    for (tier, mut candidates) in tiers {
        // The agent idle longest first, then by id.
        candidates.sort_by(|a, b| {
            (idle_since(&a.value), &a.value.agent.id)
                .cmp(&(idle_since(&b.value), &b.value.agent.id))
        });
        let mut got = Vec::new();
        let mut rest = candidates.into_iter();
        // Claims run concurrently, a batch of what is still needed at a time.
        loop {
            let need = usize::from(pool.max_legs).saturating_sub(got.len());
            let batch: Vec<_> = rest.by_ref().take(need).collect();
            if batch.is_empty() {
                break;
            }
            let tries = batch.into_iter().map(|c| {
                let mut r = c.value;
                let presence = Presence::Offered {
                    offer: offer.clone(),
                    until,
                };
                r.set_presence(presence, now);
                async move {
                    let ok = d.cas_agent(&pool.id, c.version, &r).await?;
                    Ok::<_, StateError>(ok.then(|| (r.agent.id.clone(), r.agent.reach.clone())))
                }
            });
            for won in join_all(tries).await {
                got.extend(won?);
            }
        }
        if !got.is_empty() {
            return Ok(Some((tier, got)));
        }
    }
    Ok(None)
}

fn idle_since(r: &AgentRecord) -> DateTime<Utc> {
    match &r.presence {
        Presence::Offered { until, .. } | Presence::WrapUp { until } => (*until).max(r.since),
        _ => r.since,
    }
}

/// Sets `agent` to `target` at `at` if their presence still names `offer`.
async fn set_if_offered<D: AgentDocs + ?Sized>(
    d: &D,
    pool: &AgentPoolId,
    agent: &AgentId,
    offer: &OfferId,
    target: Presence,
    at: DateTime<Utc>,
) -> Result<(), StateError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(v) = d.agent_doc(pool, agent).await? else {
            return Ok(());
        };
        let Presence::Offered { offer: o, .. } = &v.value.presence else {
            return Ok(());
        };
        if o != offer {
            return Ok(());
        }
        let mut r = v.value.clone();
        r.set_presence(target.clone(), at);
        if d.cas_agent(pool, v.version, &r).await? {
            return Ok(());
        }
    }
    Err(contended("release agent"))
}

/// Brings each agent of the offer to the presence the offer decides for them.
async fn settle<D: AgentDocs + ?Sized>(
    d: &D,
    offer: &Offer,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut work = Vec::new();
    for leg in offer.legs.iter().rev() {
        if !seen.insert(leg.agent.clone()) {
            continue;
        }
        if let Some(target) = offer.presence_for(&leg.agent) {
            let at = leg.ended_at.unwrap_or(now);
            work.push(set_if_offered(
                d,
                &offer.pool,
                &leg.agent,
                &offer.id,
                target,
                at,
            ));
        }
    }
    join_all(work).await.into_iter().collect()
}

/// Frees agents claimed for a round that lost its compare-and-set.
async fn unclaim<D: AgentDocs + ?Sized>(
    d: &D,
    pool: &AgentPoolId,
    offer: &OfferId,
    agents: &[(AgentId, Reach)],
    at: DateTime<Utc>,
) -> Result<(), StateError> {
    let work = agents
        .iter()
        .map(|(a, _)| set_if_offered(d, pool, a, offer, Presence::Available, at));
    join_all(work).await.into_iter().collect()
}

/// Ends the current round when it is over (TTL or every leg declined), offering the
/// next tier or falling back; returns the offer as stored afterwards.
async fn advance<D: AgentDocs + ?Sized>(
    d: &D,
    pool: &AgentPool,
    mut v: Versioned<Offer>,
    now: DateTime<Utc>,
) -> Result<Offer, StateError> {
    for _ in 0..CAS_ATTEMPTS {
        if v.value.next(now) != Next::Advance {
            settle(d, &v.value, now).await?;
            return Ok(v.value);
        }
        let mut o = v.value.clone();
        let claimed = claim(d, pool, &o.id, &o.needs, o.last_tier(), now).await?;
        match &claimed {
            Some((tier, agents)) => o.start_round(*tier, agents, now, pool.offer_ttl),
            None => o.fall_back(now),
        }
        if d.cas_offer(v.version, &o).await? {
            settle(d, &o, now).await?;
            return Ok(o);
        }
        if let Some((_, agents)) = &claimed {
            unclaim(d, &pool.id, &o.id, agents, now).await?;
        }
        v = offer_of(d, &pool.id, &o.id).await?;
    }
    Err(contended("advance offer"))
}

/// Applies a pure transition to an offer by compare-and-set; returns the stored offer and
/// the transition's own result.
async fn transition<D, T, F>(
    d: &D,
    pool: &AgentPoolId,
    id: &OfferId,
    operation: &'static str,
    mut f: F,
) -> Result<(Versioned<Offer>, T), StateError>
where
    D: AgentDocs + ?Sized,
    F: FnMut(&mut Offer) -> T + Send,
    T: Send,
{
    for _ in 0..CAS_ATTEMPTS {
        let v = offer_of(d, pool, id).await?;
        let mut o = v.value.clone();
        let out = f(&mut o);
        if o == v.value {
            return Ok((v, out));
        }
        if d.cas_offer(v.version, &o).await? {
            return Ok((
                Versioned {
                    version: v.version + 1,
                    value: o,
                },
                out,
            ));
        }
    }
    Err(contended(operation))
}

async fn change_presence<D: AgentDocs + ?Sized>(
    d: &D,
    pool: &AgentPool,
    agent: &AgentId,
    change: PresenceChange,
    at: DateTime<Utc>,
) -> Result<Presence, StateError> {
    for _ in 0..CAS_ATTEMPTS {
        let v = d
            .agent_doc(&pool.id, agent)
            .await?
            .ok_or_else(|| unknown("agent", agent.as_str()))?;
        let now = v.value.presence.at(at);
        let target = match (change, &now) {
            (PresenceChange::LogIn, Presence::Offline) => Presence::Available,
            (PresenceChange::LogOut, Presence::OnCall { .. }) => {
                return Err(StateError::Invalid(ValidationError::new(
                    "agent",
                    agent.as_str(),
                    "is on a call: end the call before logging out",
                )))
            }
            (PresenceChange::LogOut, Presence::Offline) => return Ok(now),
            (PresenceChange::LogOut, _) => Presence::Offline,
            (PresenceChange::EndCall, Presence::OnCall { .. }) if pool.wrap_up.is_zero() => {
                Presence::Available
            }
            (PresenceChange::EndCall, Presence::OnCall { .. }) => Presence::WrapUp {
                until: after(at, pool.wrap_up),
            },
            _ => return Ok(now),
        };
        let mut r = v.value.clone();
        r.set_presence(target.clone(), at);
        if d.cas_agent(&pool.id, v.version, &r).await? {
            return Ok(target);
        }
    }
    Err(contended("set presence"))
}

#[async_trait]
impl<D: AgentDocs + ?Sized> AgentStore for D {
    async fn put_pool(&self, pool: &AgentPool) -> Result<(), StateError> {
        self.put_pool_doc(pool).await
    }

    async fn pool(&self, pool: &AgentPoolId) -> Result<Option<AgentPool>, StateError> {
        self.pool_doc(pool).await
    }

    async fn put_agent(
        &self,
        pool: &AgentPoolId,
        agent: &Agent,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        pool_of(self, pool).await?;
        for _ in 0..CAS_ATTEMPTS {
            match self.agent_doc(pool, &agent.id).await? {
                None => {
                    if self
                        .insert_agent(pool, &AgentRecord::new(agent.clone(), at))
                        .await?
                    {
                        return Ok(());
                    }
                }
                Some(v) => {
                    let mut r = v.value.clone();
                    r.agent = agent.clone();
                    if r == v.value || self.cas_agent(pool, v.version, &r).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(contended("put agent"))
    }

    async fn remove_agent(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(v) = self.agent_doc(pool, agent).await? else {
                return Ok(false);
            };
            if matches!(
                v.value.presence.at(at),
                Presence::OnCall { .. } | Presence::Offered { .. }
            ) {
                return Err(StateError::Invalid(ValidationError::new(
                    "agent",
                    agent.as_str(),
                    "is on a call or being offered one",
                )));
            }
            if self.delete_agent(pool, agent, v.version).await? {
                return Ok(true);
            }
        }
        Err(contended("remove agent"))
    }

    async fn agents(
        &self,
        pool: &AgentPoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<AgentStatus>, StateError> {
        pool_of(self, pool).await?;
        Ok(self
            .agent_docs(pool)
            .await?
            .into_iter()
            .map(|v| AgentStatus {
                presence: v.value.presence.at(now),
                tally: v.value.tally_at(now),
                agent: v.value.agent,
            })
            .collect())
    }

    async fn set_presence(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        change: PresenceChange,
        at: DateTime<Utc>,
    ) -> Result<Presence, StateError> {
        let p = pool_of(self, pool).await?;
        if change == PresenceChange::LogOut {
            if let Some(v) = self.agent_doc(pool, agent).await? {
                if let Presence::Offered { offer, .. } = v.value.presence.at(at) {
                    self.decline(pool, &offer, agent, at).await?;
                }
            }
        }
        change_presence(self, &p, agent, change, at).await
    }

    async fn available(
        &self,
        pool: &AgentPoolId,
        needs: &Needs,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        Ok(self
            .agent_docs(pool)
            .await?
            .iter()
            .filter(|v| {
                v.value.presence.at(now) == Presence::Available && v.value.agent.handles(needs, now)
            })
            .count())
    }

    async fn start_offer(&self, req: &OfferRequest) -> Result<Offer, StateError> {
        let pool = pool_of(self, &req.pool).await?;
        if let Some(v) = self.offer_doc(&req.pool, &req.id).await? {
            return advance(self, &pool, v, req.at).await;
        }
        let mut o = Offer::new(
            req.id.clone(),
            req.pool.clone(),
            req.call.clone(),
            req.needs.clone(),
            req.at,
        );
        o.context.clone_from(&req.context);
        let claimed = claim(self, &pool, &o.id, &o.needs, 0, req.at).await?;
        match &claimed {
            Some((tier, agents)) => o.start_round(*tier, agents, req.at, pool.offer_ttl),
            None => o.fall_back(req.at),
        }
        if self.insert_offer(&o).await? {
            return Ok(o);
        }
        if let Some((_, agents)) = &claimed {
            unclaim(self, &req.pool, &o.id, agents, req.at).await?;
        }
        let v = offer_of(self, &req.pool, &req.id).await?;
        advance(self, &pool, v, req.at).await
    }

    async fn offer(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
    ) -> Result<Option<Offer>, StateError> {
        Ok(self.offer_doc(pool, offer).await?.map(|v| v.value))
    }

    async fn accept(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        agent: &AgentId,
        at: DateTime<Utc>,
    ) -> Result<AcceptOutcome, StateError> {
        let (v, out) = transition(self, pool, offer, "accept", |o| o.accept(agent, at)).await?;
        if let AcceptOutcome::Won { .. } = out {
            settle(self, &v.value, at).await?;
        }
        Ok(out)
    }

    async fn decline(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        agent: &AgentId,
        at: DateTime<Utc>,
    ) -> Result<Offer, StateError> {
        let p = pool_of(self, pool).await?;
        let (v, _) = transition(self, pool, offer, "decline", |o| o.decline(agent, at)).await?;
        advance(self, &p, v, at).await
    }

    async fn caller_hung_up(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        at: DateTime<Utc>,
    ) -> Result<Offer, StateError> {
        let (v, _) = transition(self, pool, offer, "hang up", |o| o.caller_hung_up(at)).await?;
        settle(self, &v.value, at).await?;
        Ok(v.value)
    }

    async fn tick(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        now: DateTime<Utc>,
    ) -> Result<Offer, StateError> {
        let p = pool_of(self, pool).await?;
        let v = offer_of(self, pool, offer).await?;
        advance(self, &p, v, now).await
    }

    async fn live_offers(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
    ) -> Result<Vec<Offer>, StateError> {
        self.offer_docs(pool, since, true).await
    }

    async fn metrics(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<AgentMetrics, StateError> {
        let offers = self.offer_docs(pool, since, false).await?;
        let agents = self.agent_docs(pool).await?;
        Ok(metrics_of(
            &offers,
            agents
                .into_iter()
                .map(|v| v.value)
                .collect::<Vec<_>>()
                .as_slice(),
            now,
        ))
    }
}
