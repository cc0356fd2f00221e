//! Payments and settlement of a sale.
//!
//! A sale's payments must cover its total. Only cash may exceed it (the
//! cashier gives change); a card, WeChat Pay or Alipay payment is for an exact
//! amount, so non-cash payments together may never exceed the total. These
//! rules live here so that a till, the edge API and a later replay of a
//! ledger all agree on what a settled sale is.
//!
//! Every amount is bounded: non-cash payments by the total, cash by the total
//! plus the most change a till hands back (a store setting, by default
//! [`DEFAULT_MAX_CHANGE_FEN`]), so a mistyped or hostile amount is refused
//! instead of being booked with absurd change, and no sum can overflow.

use crate::money::Fen;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    Card,
    WechatPay,
    Alipay,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cash => "cash",
            PaymentMethod::Card => "card",
            PaymentMethod::WechatPay => "wechat_pay",
            PaymentMethod::Alipay => "alipay",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentMethod> {
        Some(match s {
            "cash" => PaymentMethod::Cash,
            "card" => PaymentMethod::Card,
            "wechat_pay" => PaymentMethod::WechatPay,
            "alipay" => PaymentMethod::Alipay,
            _ => return None,
        })
    }
}

/// One tender of a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    pub method: PaymentMethod,
    pub amount: Fen,
}

/// How a validated sale was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// Sum of all tenders.
    pub tendered: Fen,
    /// Cash handed back to the customer.
    pub change: Fen,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// A sale needs at least one payment line.
    #[error("a sale needs at least one payment")]
    NoPayments,
    /// More payment lines than any till produces.
    #[error("a sale may have at most {0} payments")]
    TooMany(usize),
    #[error("payment amounts must be positive, got {0} fen")]
    NotPositive(i64),
    #[error("payments of {paid} fen do not cover the total of {total} fen")]
    Insufficient { total: i64, paid: i64 },
    /// Card and mobile payments are for exact amounts; only cash gives change.
    #[error(
        "non-cash payments of {non_cash} fen exceed the total of {total} fen; only cash can be overpaid"
    )]
    NonCashOverpaid { total: i64, non_cash: i64 },
    #[error("payment amounts overflow")]
    Overflow,
    /// More cash than the total plus the most change a till gives: a typo
    /// (an extra zero) or a forged request, never a real customer.
    #[error(
        "payments of {tendered} fen for a total of {total} fen would give {change} fen in change, more than the {max_change} fen a till gives; check the cash amount"
    )]
    ChangeTooLarge {
        total: i64,
        tendered: i64,
        change: i64,
        max_change: i64,
    },
}

pub const MAX_PAYMENTS: usize = 8;

/// The most change a till hands back unless the store sets otherwise:
/// ¥1,000 (ten ¥100 notes more than the total is already implausible).
pub const DEFAULT_MAX_CHANGE_FEN: i64 = 100_000;

/// Checks that `payments` settle `total` and computes the change, which may
/// be at most `max_change`.
pub fn settle(
    total: Fen,
    payments: &[Payment],
    max_change: Fen,
) -> Result<Settlement, PaymentError> {
    if payments.is_empty() {
        return Err(PaymentError::NoPayments);
    }
    if payments.len() > MAX_PAYMENTS {
        return Err(PaymentError::TooMany(MAX_PAYMENTS));
    }
    let mut tendered = Fen::ZERO;
    let mut non_cash = Fen::ZERO;
    for p in payments {
        if !p.amount.is_positive() {
            return Err(PaymentError::NotPositive(p.amount.0));
        }
        tendered = tendered
            .checked_add(p.amount)
            .ok_or(PaymentError::Overflow)?;
        if p.method != PaymentMethod::Cash {
            non_cash = non_cash
                .checked_add(p.amount)
                .ok_or(PaymentError::Overflow)?;
        }
    }
    if tendered < total {
        return Err(PaymentError::Insufficient {
            total: total.0,
            paid: tendered.0,
        });
    }
    if non_cash > total {
        return Err(PaymentError::NonCashOverpaid {
            total: total.0,
            non_cash: non_cash.0,
        });
    }
    let change = tendered.checked_sub(total).ok_or(PaymentError::Overflow)?;
    if change > max_change {
        return Err(PaymentError::ChangeTooLarge {
            total: total.0,
            tendered: tendered.0,
            change: change.0,
            max_change: max_change.0,
        });
    }
    Ok(Settlement { tendered, change })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: Fen = Fen(DEFAULT_MAX_CHANGE_FEN);

    fn pay(method: PaymentMethod, amount: i64) -> Payment {
        Payment {
            method,
            amount: Fen(amount),
        }
    }

    #[test]
    fn cash_gives_change() {
        let s = settle(Fen(1865), &[pay(PaymentMethod::Cash, 2000)], MAX).unwrap();
        assert_eq!(s.change, Fen(135));
    }

    #[test]
    fn split_payment_covers_total() {
        let s = settle(
            Fen(5000),
            &[
                pay(PaymentMethod::WechatPay, 3000),
                pay(PaymentMethod::Cash, 2000),
            ],
            MAX,
        )
        .unwrap();
        assert_eq!(s.change, Fen::ZERO);
    }

    #[test]
    fn refusals() {
        assert_eq!(settle(Fen(1), &[], MAX), Err(PaymentError::NoPayments));
        assert_eq!(
            settle(Fen(100), &[pay(PaymentMethod::Card, 99)], MAX),
            Err(PaymentError::Insufficient {
                total: 100,
                paid: 99
            })
        );
        assert_eq!(
            settle(Fen(100), &[pay(PaymentMethod::Alipay, 101)], MAX),
            Err(PaymentError::NonCashOverpaid {
                total: 100,
                non_cash: 101
            })
        );
        assert_eq!(
            settle(Fen(100), &[pay(PaymentMethod::Cash, 0)], MAX),
            Err(PaymentError::NotPositive(0))
        );
    }

    #[test]
    fn cash_is_bounded_by_the_total_plus_the_change_limit() {
        // the attack of issue 8: i64::MAX fen of cash
        assert_eq!(
            settle(Fen(1950), &[pay(PaymentMethod::Cash, i64::MAX)], MAX),
            Err(PaymentError::ChangeTooLarge {
                total: 1950,
                tendered: i64::MAX,
                change: i64::MAX - 1950,
                max_change: DEFAULT_MAX_CHANGE_FEN
            })
        );
        // exactly the limit is fine, a fen more is not
        let s = settle(Fen(1950), &[pay(PaymentMethod::Cash, 1950 + 100_000)], MAX).unwrap();
        assert_eq!(s.change, MAX);
        assert!(matches!(
            settle(Fen(1950), &[pay(PaymentMethod::Cash, 1951 + 100_000)], MAX),
            Err(PaymentError::ChangeTooLarge {
                change: 100_001,
                ..
            })
        ));
        // split: card part plus too much cash
        assert!(matches!(
            settle(
                Fen(5000),
                &[
                    pay(PaymentMethod::Card, 4000),
                    pay(PaymentMethod::Cash, 200_000)
                ],
                MAX
            ),
            Err(PaymentError::ChangeTooLarge {
                change: 199_000,
                ..
            })
        ));
        // several huge amounts overflow instead of wrapping
        assert_eq!(
            settle(
                Fen(1),
                &[
                    pay(PaymentMethod::Cash, i64::MAX),
                    pay(PaymentMethod::Cash, i64::MAX)
                ],
                MAX
            ),
            Err(PaymentError::Overflow)
        );
        // a store that gives no change at all
        assert!(settle(Fen(100), &[pay(PaymentMethod::Cash, 100)], Fen::ZERO).is_ok());
        assert!(settle(Fen(100), &[pay(PaymentMethod::Cash, 101)], Fen::ZERO).is_err());
    }

    proptest! {
        #[test]
        fn settled_sales_balance(total in 1i64..10_000_000, amounts in proptest::collection::vec((0u8..4, 1i64..5_000_000), 1..8)) {
            let payments: Vec<Payment> = amounts.iter().map(|(m, a)| pay(
                [PaymentMethod::Cash, PaymentMethod::Card, PaymentMethod::WechatPay, PaymentMethod::Alipay][*m as usize], *a)).collect();
            if let Ok(s) = settle(Fen(total), &payments, MAX) {
                prop_assert_eq!(s.tendered.0 - s.change.0, total);
                prop_assert!(s.change.0 >= 0);
                // change never exceeds the cash tendered
                let cash: i64 = payments.iter().filter(|p| p.method == PaymentMethod::Cash).map(|p| p.amount.0).sum();
                prop_assert!(s.change.0 <= cash);
                prop_assert!(s.change <= MAX);
            }
        }
    }
}
