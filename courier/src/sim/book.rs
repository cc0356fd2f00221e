//! The simulator's deliveries and their rules, without IO.
//!
//! Every operation takes the current time from the caller, so the rules are
//! tested here with fixed instants and the HTTP layer only translates. The
//! invariant kept: one delivery per idempotency key (order id), and a delivery
//! only moves forward: requested → picked_up → delivered, or to failed /
//! cancelled, and never leaves a final state.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{CourierState, CourierStatus, DeliveryRequest};

/// Why the simulator refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A field of the delivery request is out of range or empty.
    #[error("invalid field: {0}")]
    InvalidField(String),
    /// The idempotency key was used before with a different request.
    #[error("idempotency key {0:?} was already used with a different request")]
    IdempotencyKeyReused(String),
    /// No delivery has this reference.
    #[error("unknown delivery {0}")]
    UnknownDelivery(String),
    /// Only a requested delivery can be cancelled.
    #[error("delivery {courier_ref} is {state:?} and can no longer be cancelled")]
    NotCancellable {
        /// The delivery.
        courier_ref: String,
        /// Its state, which does not allow cancelling.
        state: CourierState,
    },
    /// The delivery is in a final state (or the step does not apply to it).
    #[error("delivery {courier_ref} is {state:?}: no such transition")]
    InvalidTransition {
        /// The delivery.
        courier_ref: String,
        /// Its state, from which the transition is not allowed.
        state: CourierState,
    },
}

/// One delivery as the simulator keeps it.
#[derive(Debug, Clone)]
struct Delivery {
    request: DeliveryRequest,
    status: CourierStatus,
}

/// What a dispatch did.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Dispatch {
    pub(super) status: CourierStatus,
    /// False when the key was seen before and the existing delivery is
    /// returned.
    pub(super) created: bool,
}

/// All deliveries, by reference, with the index from idempotency key.
#[derive(Debug, Default)]
pub(super) struct Book {
    by_ref: HashMap<String, Delivery>,
    by_key: HashMap<String, String>,
}

impl Book {
    pub(super) fn len(&self) -> usize {
        self.by_ref.len()
    }

    /// Accepts `req` under `key`, or returns the delivery already made for it.
    pub(super) fn dispatch(
        &mut self,
        key: &str,
        req: DeliveryRequest,
        new_ref: impl FnOnce() -> String,
    ) -> Result<Dispatch, SimError> {
        validate(key, &req)?;
        if let Some(existing) = self.by_key.get(key).and_then(|r| self.by_ref.get(r)) {
            if existing.request != req {
                return Err(SimError::IdempotencyKeyReused(key.to_owned()));
            }
            return Ok(Dispatch {
                status: existing.status.clone(),
                created: false,
            });
        }
        let courier_ref = new_ref();
        let status = CourierStatus {
            courier_ref: courier_ref.clone(),
            state: CourierState::Requested,
            picked_up_at: None,
            delivered_at: None,
            failure: None,
        };
        self.by_key.insert(key.to_owned(), courier_ref.clone());
        self.by_ref.insert(
            courier_ref,
            Delivery {
                request: req,
                status: status.clone(),
            },
        );
        Ok(Dispatch {
            status,
            created: true,
        })
    }

    pub(super) fn status(&self, courier_ref: &str) -> Result<CourierStatus, SimError> {
        Ok(self.get(courier_ref)?.status.clone())
    }

    /// Cancels a requested delivery; cancelling a cancelled one again is a
    /// no-op so a retried cancel does not fail.
    pub(super) fn cancel(&mut self, courier_ref: &str) -> Result<CourierStatus, SimError> {
        let status = &mut self.get_mut(courier_ref)?.status;
        match status.state {
            CourierState::Requested => status.state = CourierState::Cancelled,
            CourierState::Cancelled => {}
            state => {
                return Err(SimError::NotCancellable {
                    courier_ref: courier_ref.to_owned(),
                    state,
                });
            }
        }
        Ok(status.clone())
    }

    /// One step forward: requested → picked_up → delivered.
    pub(super) fn advance(
        &mut self,
        courier_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<CourierStatus, SimError> {
        let status = &mut self.get_mut(courier_ref)?.status;
        advance_status(status, now)?;
        Ok(status.clone())
    }

    /// The courier gives up on a delivery that is not final yet.
    pub(super) fn fail(
        &mut self,
        courier_ref: &str,
        reason: String,
    ) -> Result<CourierStatus, SimError> {
        let status = &mut self.get_mut(courier_ref)?.status;
        match status.state {
            CourierState::Requested | CourierState::PickedUp => {
                status.state = CourierState::Failed;
                status.failure = Some(reason);
                Ok(status.clone())
            }
            state => Err(SimError::InvalidTransition {
                courier_ref: courier_ref.to_owned(),
                state,
            }),
        }
    }

    /// Advances every delivery that is not final by one step; returns how many
    /// moved.
    pub(super) fn advance_all(&mut self, now: DateTime<Utc>) -> usize {
        let mut moved = 0;
        for delivery in self.by_ref.values_mut() {
            if advance_status(&mut delivery.status, now).is_ok() {
                moved += 1;
            }
        }
        moved
    }

    fn get(&self, courier_ref: &str) -> Result<&Delivery, SimError> {
        self.by_ref
            .get(courier_ref)
            .ok_or_else(|| SimError::UnknownDelivery(courier_ref.to_owned()))
    }

    fn get_mut(&mut self, courier_ref: &str) -> Result<&mut Delivery, SimError> {
        self.by_ref
            .get_mut(courier_ref)
            .ok_or_else(|| SimError::UnknownDelivery(courier_ref.to_owned()))
    }
}

fn advance_status(status: &mut CourierStatus, now: DateTime<Utc>) -> Result<(), SimError> {
    match status.state {
        CourierState::Requested => {
            status.state = CourierState::PickedUp;
            status.picked_up_at = Some(now);
        }
        CourierState::PickedUp => {
            status.state = CourierState::Delivered;
            status.delivered_at = Some(now);
        }
        state => {
            return Err(SimError::InvalidTransition {
                courier_ref: status.courier_ref.clone(),
                state,
            });
        }
    }
    Ok(())
}

/// The checks a courier makes before sending a rider: a real one would refuse
/// these too, and a store must find out at dispatch, not when nobody comes.
fn validate(key: &str, req: &DeliveryRequest) -> Result<(), SimError> {
    let invalid = |m: String| Err(SimError::InvalidField(m));
    if req.order_id.is_empty() {
        return invalid("order_id is empty".into());
    }
    if key != req.order_id {
        return invalid(format!(
            "Idempotency-Key {key:?} must equal order_id {:?}",
            req.order_id
        ));
    }
    if req.store_id.is_empty() {
        return invalid("store_id is empty".into());
    }
    for (name, value, limit) in [
        ("pickup_lat", req.pickup_lat, 90.0),
        ("pickup_lon", req.pickup_lon, 180.0),
        ("dropoff_lat", req.dropoff_lat, 90.0),
        ("dropoff_lon", req.dropoff_lon, 180.0),
    ] {
        if !value.is_finite() || value.abs() > limit {
            return invalid(format!("{name} {value} is outside -{limit}..={limit}"));
        }
    }
    if req.window_end <= req.window_start {
        return invalid(format!(
            "window_end {} is not after window_start {}",
            req.window_end, req.window_start
        ));
    }
    if req.items == 0 {
        return invalid("items is 0".into());
    }
    if req.contact.is_empty() {
        return invalid("contact is empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 10, min, 0).unwrap()
    }

    fn req(order: &str) -> DeliveryRequest {
        DeliveryRequest {
            order_id: order.into(),
            store_id: "s1".into(),
            pickup_lat: 31.2,
            pickup_lon: 121.4,
            dropoff_lat: 31.21,
            dropoff_lon: 121.41,
            window_start: t(0),
            window_end: t(30),
            contact: "138****1234".into(),
            items: 2,
        }
    }

    fn dispatch(book: &mut Book, r: DeliveryRequest) -> Result<Dispatch, SimError> {
        let n = book.len();
        book.dispatch(&r.order_id.clone(), r, || format!("ref-{n}"))
    }

    #[test]
    fn dispatch_is_idempotent_on_the_key() {
        let mut book = Book::default();
        let first = dispatch(&mut book, req("o1")).unwrap();
        assert!(first.created);
        let again = dispatch(&mut book, req("o1")).unwrap();
        assert!(!again.created);
        assert_eq!(again.status.courier_ref, first.status.courier_ref);
        assert_eq!(book.len(), 1);

        let mut other = req("o1");
        other.items = 3;
        assert_eq!(
            dispatch(&mut book, other),
            Err(SimError::IdempotencyKeyReused("o1".into()))
        );
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn replay_returns_the_current_state() {
        let mut book = Book::default();
        let r = dispatch(&mut book, req("o1")).unwrap().status.courier_ref;
        book.advance(&r, t(5)).unwrap();
        let again = dispatch(&mut book, req("o1")).unwrap();
        assert_eq!(again.status.state, CourierState::PickedUp);
    }

    #[test]
    fn invalid_requests_are_refused_and_not_stored() {
        let mut book = Book::default();
        let bad: Vec<fn(&mut DeliveryRequest)> = vec![
            |r| r.window_end = r.window_start,
            |r| r.pickup_lat = 90.5,
            |r| r.dropoff_lon = -181.0,
            |r| r.dropoff_lat = f64::NAN,
            |r| r.items = 0,
            |r| r.store_id.clear(),
            |r| r.contact.clear(),
        ];
        for spoil in bad {
            let mut r = req("o1");
            spoil(&mut r);
            assert!(matches!(
                dispatch(&mut book, r),
                Err(SimError::InvalidField(_))
            ));
        }
        assert!(matches!(
            book.dispatch("other", req("o1"), || "x".into()),
            Err(SimError::InvalidField(_))
        ));
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn a_delivery_moves_forward_only() {
        let mut book = Book::default();
        let r = dispatch(&mut book, req("o1")).unwrap().status.courier_ref;
        let s = book.advance(&r, t(5)).unwrap();
        assert_eq!(
            (s.state, s.picked_up_at, s.delivered_at),
            (CourierState::PickedUp, Some(t(5)), None)
        );
        assert!(matches!(
            book.cancel(&r),
            Err(SimError::NotCancellable {
                state: CourierState::PickedUp,
                ..
            })
        ));
        let s = book.advance(&r, t(9)).unwrap();
        assert_eq!(
            (s.state, s.picked_up_at, s.delivered_at),
            (CourierState::Delivered, Some(t(5)), Some(t(9)))
        );
        assert!(matches!(
            book.advance(&r, t(10)),
            Err(SimError::InvalidTransition { .. })
        ));
        assert!(matches!(
            book.fail(&r, "late".into()),
            Err(SimError::InvalidTransition { .. })
        ));
        assert_eq!(book.status(&r).unwrap(), s);
    }

    #[test]
    fn cancel_only_before_pickup_and_again_is_a_no_op() {
        let mut book = Book::default();
        let r = dispatch(&mut book, req("o1")).unwrap().status.courier_ref;
        assert_eq!(book.cancel(&r).unwrap().state, CourierState::Cancelled);
        assert_eq!(book.cancel(&r).unwrap().state, CourierState::Cancelled);
        assert!(book.advance(&r, t(1)).is_err());
        assert_eq!(
            book.cancel("nope"),
            Err(SimError::UnknownDelivery("nope".into()))
        );
    }

    #[test]
    fn fail_records_the_reason() {
        let mut book = Book::default();
        let r = dispatch(&mut book, req("o1")).unwrap().status.courier_ref;
        let s = book.fail(&r, "no rider".into()).unwrap();
        assert_eq!(s.state, CourierState::Failed);
        assert_eq!(s.failure.as_deref(), Some("no rider"));
        assert!(book.advance(&r, t(1)).is_err());
    }

    #[test]
    fn advance_all_moves_only_open_deliveries() {
        let mut book = Book::default();
        let a = dispatch(&mut book, req("a")).unwrap().status.courier_ref;
        let b = dispatch(&mut book, req("b")).unwrap().status.courier_ref;
        book.cancel(&b).unwrap();
        assert_eq!(book.advance_all(t(1)), 1);
        assert_eq!(book.advance_all(t(2)), 1);
        assert_eq!(book.advance_all(t(3)), 0);
        assert_eq!(book.status(&a).unwrap().state, CourierState::Delivered);
        assert_eq!(book.status(&b).unwrap().state, CourierState::Cancelled);
    }
}
