//! Tables given back: after a crowd of links leaves, the exchange does not keep tables sized for
//! it. (Its own test binary: the churn tests measure this process's RSS, and 5,000 links
//! opening beside them would move it.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hakuban_core::{Exchange, LinkConfig, LinkRole};

#[test]
fn the_tables_of_five_thousand_links_are_given_back_when_the_links_go() {
    // A router after a crowd of clients left: the engine's link records and the facade's link
    // wakers must not keep tables sized for the crowd.
    let exchange = Exchange::new();
    let empty = exchange.table_bytes();
    let waker = futures::task::noop_waker();
    let mut links: Vec<_> =
        (0..5_000).map(|_| exchange.open_link(LinkRole::Downstream, LinkConfig::default()).unwrap()).collect();
    for link in &mut links {
        // Sent all it had (its hello), so the waker is kept until there is more.
        while link.poll_transmit(exchange.now()).is_some() {}
        link.register_waker(&waker);
    }
    assert_eq!(exchange.waiter_counts(), 5_000, "every link's waker is held");
    let crowded = exchange.table_bytes();
    assert!(crowded > 100_000, "5,000 links take room: {crowded} bytes");
    drop(links);
    assert_eq!(exchange.counts(), Default::default());
    assert_eq!(exchange.waiter_counts(), 0);
    let left = exchange.table_bytes();
    assert!(left <= empty + 32 * 1024, "{left} bytes of tables kept after the links went ({crowded} with them)");
}
