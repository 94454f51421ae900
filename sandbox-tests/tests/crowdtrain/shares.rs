//! Shares change hands between revenue payments (`ft_transfer`, and
//! `ft_transfer_call` whose receiver sends part back): each side's royalties are
//! exact. Revenues are whole multiples of the supply, so every share earns a whole
//! number of yoctoNEAR and the expected amounts need no rounding model.

use crate::common::crowdtrain::{FreshRun, fresh_run};
use crate::common::*;
use near_workspaces::types::NearToken;
use serde_json::{Value, json};

/// A share receiver: `ft_on_transfer` keeps all but 1,000 shares (returns "1000");
/// `fund(run)` deposits the attached NEAR into `run` so it holds a share account.
const RECEIVER_WAT: &str = r#"
(module
  (import "env" "input" (func $input (param i64)))
  (import "env" "read_register" (func $read_register (param i64 i64)))
  (import "env" "register_len" (func $register_len (param i64) (result i64)))
  (import "env" "attached_deposit" (func $attached_deposit (param i64)))
  (import "env" "value_return" (func $value_return (param i64 i64)))
  (import "env" "promise_batch_create" (func $batch (param i64 i64) (result i64)))
  (import "env" "promise_batch_action_function_call"
    (func $call (param i64 i64 i64 i64 i64 i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "deposit")
  (data (i32.const 32) "\"1000\"")
  (func (export "fund")
    (call $input (i64.const 0))
    (call $read_register (i64.const 0) (i64.const 1024))
    (call $attached_deposit (i64.const 256))
    (call $call (call $batch (call $register_len (i64.const 0)) (i64.const 1024))
      (i64.const 7) (i64.const 16) (i64.const 0) (i64.const 0) (i64.const 256) (i64.const 30000000000000)))
  (func (export "ft_on_transfer") (call $value_return (i64.const 6) (i64.const 32)))
)
"#;

#[tokio::test]
async fn royalties_follow_the_shares_across_transfers() {
    let Some(FreshRun { net, root, run, .. }) = fresh_run("shares", 5 * NEAR, |_| {}).await else {
        return;
    };

    let mut holders = Vec::new();
    for (name, near) in [("a", 3u128), ("b", 4)] {
        let h = root
            .create_subaccount(name)
            .initial_balance(NearToken::from_near(10))
            .transact()
            .await
            .unwrap()
            .unwrap();
        let out = h
            .call(&run, "deposit")
            .deposit(NearToken::from_yoctonear(near * NEAR))
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        holders.push(h);
    }
    let receiver = root
        .create_subaccount("recv")
        .initial_balance(NearToken::from_near(10))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let receiver = receiver
        .deploy(&wat::parse_str(RECEIVER_WAT).unwrap())
        .await
        .unwrap()
        .unwrap();
    let out = receiver
        .call("fund")
        .args(run.as_bytes().to_vec())
        .deposit(NearToken::from_near(2))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        out.is_success() && out.receipt_failures().is_empty(),
        "{out:?}"
    );

    let view_u128 = |method: &'static str, args: Value| {
        let (net, run) = (&net, run.clone());
        async move {
            let v: Value = net
                .worker
                .view(&run, method)
                .args_json(args)
                .await
                .unwrap()
                .json()
                .unwrap();
            v
        }
    };
    let balance = |who: String| async move {
        view_u128("ft_balance_of", json!({"account_id": who}))
            .await
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    let pending = |who: String| async move {
        view_u128("pending", json!({"account_id": who})).await["royalties"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    let supply: u128 = view_u128("ft_total_supply", json!({}))
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (a, b, r) = (
        holders[0].id().to_string(),
        holders[1].id().to_string(),
        receiver.id().to_string(),
    );
    let (a0, b0, r0) = (
        balance(a.clone()).await,
        balance(b.clone()).await,
        balance(r.clone()).await,
    );
    assert_eq!(a0 + b0 + r0, supply);

    let pay = |k: u128| {
        let (root, run) = (root.clone(), run.clone());
        async move {
            let out = root
                .call(&run, "pay_revenue")
                .deposit(NearToken::from_yoctonear(k * supply))
                .transact()
                .await
                .unwrap();
            assert!(out.is_success(), "{out:?}");
        }
    };
    pay(2).await;
    let x = NEAR;
    let out = holders[0]
        .call(&run, "ft_transfer")
        .args_json(json!({"receiver_id": b, "amount": x.to_string()}))
        .deposit(NearToken::from_yoctonear(1))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    pay(3).await;
    let y = 5 * 10u128.pow(23);
    let out = holders[1]
        .call(&run, "ft_transfer_call")
        .args_json(json!({"receiver_id": r, "amount": y.to_string(), "msg": ""}))
        .deposit(NearToken::from_yoctonear(1))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    assert_eq!(
        out.clone().json::<String>().unwrap(),
        (y - 1000).to_string(),
        "1,000 shares came back"
    );
    pay(5).await;

    assert_eq!(balance(a.clone()).await, a0 - x);
    assert_eq!(balance(b.clone()).await, b0 + x - y + 1000);
    assert_eq!(balance(r.clone()).await, r0 + y - 1000);
    assert_eq!(pending(a).await, 2 * a0 + 3 * (a0 - x) + 5 * (a0 - x));
    assert_eq!(
        pending(b).await,
        2 * b0 + 3 * (b0 + x) + 5 * (b0 + x - y + 1000)
    );
    assert_eq!(pending(r).await, 2 * r0 + 3 * r0 + 5 * (r0 + y - 1000));
}
