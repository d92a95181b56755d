//! What a balancer does with an endpoint's result before handing it back.

use crate::error::BoxError;
use crate::health::{Classify, Outcome};
use crate::load::InFlight;

/// Turns an endpoint's result into the balancer's response, ending the request's accounting.
///
/// Every [classifier](Classify) is a `Respond` that hands the result back unchanged: it counts
/// the outcome on the endpoint and ends the request when the response future resolves.
/// `load::TrackBody` (feature `http`) instead keeps the request in flight
/// until the response *body* ends, so a streaming response counts its whole life in the
/// endpoint's load and round-trip time.
pub trait Respond<Res>: Clone + Send + Sync + 'static {
    /// The balancer's response type.
    type Response;

    /// Accounts for `result` through `guard` (which keeps the request in flight until it is
    /// dropped) and returns what the caller gets.
    fn respond(
        &self,
        result: Result<Res, BoxError>,
        guard: InFlight,
    ) -> Result<Self::Response, BoxError>;
}

impl<C: Classify<Res>, Res> Respond<Res> for C {
    type Response = Res;

    #[inline(always)]
    fn respond(&self, result: Result<Res, BoxError>, mut guard: InFlight) -> Result<Res, BoxError> {
        outcome(&mut guard, self.classify(result.as_ref()), result.is_ok());
        result
    }
}

/// Counts one outcome on the request's endpoint. A response is a full RTT sample; an error
/// only a lower bound, so a fast failure cannot make a broken endpoint look fast.
#[inline(always)]
pub(crate) fn outcome(guard: &mut InFlight, outcome: Outcome, responded: bool) {
    match outcome {
        Outcome::Success => guard.succeeded(),
        Outcome::Failure => guard.failed(),
    }
    if responded {
        guard.completed();
    }
}
