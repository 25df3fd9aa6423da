//! [`RouteTable`]: the `[[routes]]` rows, matched by longest path prefix,
//! and where a request must go by its route: anywhere (the local pool
//! first), or — for a write on a route with `writes_to_home_of` — the
//! region that is the table's home now.

use meridian_core::config::RouteConfig;
use meridian_core::RegionName;

use super::retry::is_write;

/// The routes of one edge.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first, so the first match is the longest.
    routes: Vec<(usize, RouteConfig)>,
}

/// Where a request's route sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The local pool, failing over to the nearest healthy region.
    Anywhere,
    /// The home region of a single-master table (a write on a
    /// `writes_to_home_of` route).
    HomeOf(String),
}

impl RouteTable {
    /// The table of `routes` (validated: unique prefixes).
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut v: Vec<(usize, RouteConfig)> = routes.iter().cloned().enumerate().collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.1.path_prefix.len()));
        RouteTable { routes: v }
    }

    /// The route of `path` and its index in the config, if any.
    pub fn find(&self, path: &str) -> Option<(usize, &RouteConfig)> {
        self.routes
            .iter()
            .find(|(_, r)| path.starts_with(&r.path_prefix))
            .map(|(i, r)| (*i, r))
    }

    /// Where a `method` request for `path` must go.
    pub fn placement(&self, method: &str, path: &str) -> Placement {
        placement_of(self.find(path).map(|(_, r)| r), method)
    }
}

/// Where a `method` request on `route` (the one [`RouteTable::find`]
/// gave, if any) must go.
pub fn placement_of(route: Option<&RouteConfig>, method: &str) -> Placement {
    match route.and_then(|r| r.writes_to_home_of.as_ref()) {
        Some(table) if is_write(method) => Placement::HomeOf(table.clone()),
        _ => Placement::Anywhere,
    }
}

/// Whether `home` (the table's home now, `None` if it has none, e.g. a
/// multi-master table) is somewhere else than `me`.
pub fn home_elsewhere(home: Option<&RegionName>, me: &RegionName) -> Option<RegionName> {
    home.filter(|h| *h != me).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, table: Option<&str>) -> RouteConfig {
        RouteConfig {
            path_prefix: prefix.into(),
            writes_to_home_of: table.map(Into::into),
            rate_limit: 0,
            rate_burst: 1,
        }
    }

    #[test]
    fn the_longest_prefix_wins() {
        let t = RouteTable::new(&[
            route("/", None),
            route("/orders", Some("orders")),
            route("/orders/archive", None),
        ]);
        assert_eq!(t.find("/orders/1").unwrap().0, 1);
        assert_eq!(t.find("/orders/archive/2").unwrap().0, 2);
        assert_eq!(t.find("/other").unwrap().0, 0);
        assert!(RouteTable::new(&[]).find("/x").is_none());
    }

    #[test]
    fn only_writes_go_to_the_home() {
        let t = RouteTable::new(&[route("/orders", Some("orders"))]);
        assert_eq!(
            t.placement("POST", "/orders"),
            Placement::HomeOf("orders".into())
        );
        assert_eq!(
            t.placement("DELETE", "/orders/3"),
            Placement::HomeOf("orders".into())
        );
        assert_eq!(t.placement("GET", "/orders/3"), Placement::Anywhere);
        assert_eq!(t.placement("POST", "/cart"), Placement::Anywhere);
        let me = RegionName::new("us-east").unwrap();
        let eu = RegionName::new("eu-west").unwrap();
        assert_eq!(home_elsewhere(Some(&eu), &me), Some(eu.clone()));
        assert_eq!(home_elsewhere(Some(&me), &me), None);
        assert_eq!(home_elsewhere(None, &me), None);
    }
}
