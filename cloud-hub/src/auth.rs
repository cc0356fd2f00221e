//! Who is calling: the hub's users and their roles ([`User`], [`Role`]),
//! and who a request acts for ([`Caller`]: a hub user or a customer).
//! Logging in, sessions and adding users are in the `hub` module.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Regional,
    /// A store manager: runs the live sessions of one store (`User::store_id`)
    /// and nothing chain-wide.
    Manager,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "regional" => Some(Role::Regional),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Regional => "regional",
            Role::Manager => "manager",
        }
    }
}

/// A logged-in hub user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The store of a [`Role::Manager`]; `None` for chain staff.
    pub store_id: Option<String>,
    /// The region of a [`Role::Regional`] (see `Scope` in the `scope` module).
    pub region: Option<String>,
}

/// Who is asking: a hub user (admin tools, phone orders) or a customer.
#[derive(Debug, Clone)]
pub enum Caller {
    Staff(User),
    Customer { customer_id: String, phone: String },
}
