//! What the app accepts as a name (a user, a SKU, an item, an order id) and
//! as a session id, and the keys it builds from them.
//!
//! Names become parts of Redis keys (`cart:<user>:<sku>`), so the rule
//! excludes `:`: no user can pick a name that reaches into another user's
//! keys. It also keeps names printable in JSON, headers and logs.

/// Longest name, bytes: far more than a user name or SKU needs, and small
/// enough that a key stays well inside one network packet.
pub const NAME_BYTES_MAX: usize = 128;

/// The rule as an error states it.
pub const NAME_RULE: &str = "1 to 128 bytes of [A-Za-z0-9_.-]";

/// Bytes of randomness in a session or order id: 128 bits, unguessable.
pub const ID_RANDOM_BYTES: usize = 16;

/// Whether `value` is 1 to [`NAME_BYTES_MAX`] bytes of `[A-Za-z0-9_.-]`.
pub fn is_name(value: &str) -> bool {
    (1..=NAME_BYTES_MAX).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `field`'s value if it follows the rule, else the message a 400 carries.
pub fn check<'a>(field: &str, value: Option<&'a str>) -> Result<&'a str, String> {
    match value {
        Some(v) if is_name(v) => Ok(v),
        Some(_) => Err(format!("{field} must be {NAME_RULE}")),
        None => Err(format!("query parameter {field} is required ({NAME_RULE})")),
    }
}

/// Whether `id` looks like an id [`new_id`] made (lowercase hex of
/// [`ID_RANDOM_BYTES`] bytes): anything else cannot name a session, so it is
/// refused before Redis is asked.
pub fn is_session_id(id: &str) -> bool {
    id.len() == ID_RANDOM_BYTES * 2 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new random id: [`ID_RANDOM_BYTES`] bytes from the OS, in hex.
pub fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; ID_RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The key of a session (table `sessions`).
pub fn session_key(id: &str) -> String {
    format!("session:{id}")
}

/// The key of one user's count of one SKU (table `carts`, a PN-counter).
pub fn cart_key(user: &str, sku: &str) -> String {
    format!("cart:{user}:{sku}")
}

/// The key of an order (table `orders`, single-master).
pub fn order_key(id: &str) -> String {
    format!("order:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "anna", "SKU-42", "x.y_z", &"a".repeat(128)] {
            assert!(is_name(ok), "{ok} is a name");
        }
        for bad in ["", "a:b", "a b", "ä", "a/b", "a%20", "{}", &"a".repeat(129)] {
            assert!(!is_name(bad), "{bad:?} is not a name");
        }
    }

    #[test]
    fn check_names_the_field_and_the_rule() {
        assert_eq!(check("sku", Some("apple")), Ok("apple"));
        assert_eq!(
            check("sku", Some("ap:ple")),
            Err("sku must be 1 to 128 bytes of [A-Za-z0-9_.-]".to_string())
        );
        assert_eq!(
            check("user", None),
            Err("query parameter user is required (1 to 128 bytes of [A-Za-z0-9_.-])".to_string())
        );
    }

    #[test]
    fn ids_are_random_hex_and_only_those_are_session_ids() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        assert!(is_session_id(&a), "{a}");
        assert!(!is_session_id(&a[1..]));
        assert!(!is_session_id("ABCDEF0123456789ABCDEF0123456789"));
        assert!(!is_session_id("../../etc/passwd"));
    }

    #[test]
    fn keys_carry_their_tables_prefixes() {
        assert_eq!(session_key("ab"), "session:ab");
        assert_eq!(cart_key("anna", "apple"), "cart:anna:apple");
        assert_eq!(order_key("ff"), "order:ff");
    }
}
