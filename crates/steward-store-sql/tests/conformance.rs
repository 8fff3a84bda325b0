//! Conformance suite: every check runs against SQLite (a temporary file) and PostgreSQL
//! (a fresh schema on `STEWARD_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL tests fail when the server is down.
//!
//! The checks live in `checks/`, one `async fn name(db: &TestDb)` each; `conformance!`
//! generates `sqlite::<topic>::name` and `postgres::<topic>::name` tests from the list below.

#![expect(clippy::unwrap_used, reason = "tests")]

mod checks;
mod support;

use support::WS;

macro_rules! conformance {
    ($($topic:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        mod sqlite {
            $(
                mod $topic {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                        async fn $name() {
                            let db = crate::support::TestDb::sqlite().await;
                            crate::checks::$topic::$name(&db).await;
                            db.cleanup().await;
                        }
                    )*
                }
            )*
        }

        mod postgres {
            $(
                mod $topic {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                        async fn $name() {
                            let db = crate::support::TestDb::postgres().await;
                            crate::checks::$topic::$name(&db).await;
                            db.cleanup().await;
                        }
                    )*
                }
            )*
        }
    };
}

conformance! {
    flows: [
        save_version_numbers_and_dedupes,
        save_version_keeps_fields,
        latest_version_and_list_flows,
        migrations_are_idempotent,
        flows_disable_delete_and_restore,
    ],
    accounts: [
        users_have_unique_case_insensitive_emails,
        workspaces_members_and_the_last_owner,
        invitations_are_used_once_by_the_invited_address,
        sessions_expire_and_end_everywhere,
        tokens_are_scoped_to_their_workspace,
    ],
    deletion: [
        workspaces_are_soft_deleted_and_restored_within_the_window,
        deleting_an_account_removes_its_rows_and_records_the_receipt,
        the_only_owner_of_a_shared_workspace_cannot_leave_it_ownerless,
    ],
    audit: [
        entries_chain_and_list_per_workspace,
        concurrent_appends_keep_one_chain,
        tampering_is_detected_at_the_first_broken_link,
    ],
    journal: [
        create_run_and_journal_round_trip,
        create_run_rejects_bad_input,
        append_conflicts_write_nothing,
        append_of_many_events_keeps_them_all_in_order,
        append_finishing_clears_lease_and_wake,
        rewrite_events_replaces_payloads,
        data_sent_events_are_found_by_workspace_and_period,
    ],
    claims: [
        claim_respects_wake_at_leases_limit_and_order,
        expired_lease_is_claimable_by_another_owner,
        a_run_created_under_a_lease_is_its_creators_until_the_lease_expires,
        a_run_can_be_created_with_its_first_commit_or_not_at_all,
        concurrent_claims_never_overlap,
        heartbeat_extends_and_reports_lost_leases,
        release_with_future_wake_at,
        next_due_accounts_for_leases,
        queue_depth_counts_due_running_and_waiting,
    ],
    concurrency: [
        concurrency_limit_caps_leased_runs,
        concurrency_limit_within_one_claim,
        concurrency_limit_holds_under_concurrent_claims,
        concurrency_limit_holds_for_simultaneous_claims,
    ],
    signals: [
        signal_wakes_released_run_until_consumed,
        signal_while_leased_keeps_lease_and_survives_release,
        signal_on_unknown_run_is_not_found,
        wakeup_waits_for_work_or_timeout,
    ],
    triggers: [
        webhooks_are_found_by_path_until_revoked,
        schedules_are_due_in_order_and_advance_once,
    ],
    agents: [
        agent_versions_number_dedupe_and_stay_in_their_workspace,
        deleted_agents_are_hidden_until_restored_or_saved,
        purging_an_agent_removes_its_versions_and_threads,
        restored_agents_are_not_purged,
        usage_adds_up_per_day_and_agent,
    ],
    threads: [
        threads_are_listed_by_activity_and_stay_in_their_workspace,
        messages_are_numbered_in_order_and_move_the_thread,
        deleting_a_thread_removes_its_messages,
        concurrent_messages_get_distinct_numbers,
        pruning_transcripts_takes_old_messages_and_emptied_threads,
        pruning_goes_on_past_one_batch,
    ],
    vault: [
        a_workspace_has_one_data_key_and_rotation_is_compare_and_set,
        concurrent_first_keys_agree_on_one,
        connections_are_per_workspace_with_unique_names,
        connections_rotate_revoke_delete_and_restore,
    ],
    retention: [
        policies_default_validate_and_update,
        sweeps_apply_each_category_on_time,
        dry_runs_count_what_the_real_sweep_does_and_change_nothing,
        batches_go_on_until_everything_expired_is_done,
        purging_a_flow_removes_it_from_every_table,
        restored_objects_are_not_purged,
        purging_a_connection_leaves_no_trace_of_its_secret,
        purging_a_workspace_removes_it_from_every_table,
        audit_pruning_keeps_the_chain_verifiable,
    ],
    listing: [
        list_runs_filters_and_pages,
        workspaces_are_isolated,
    ],
}

/// `open` takes a plain path too, creating missing directories.
#[tokio::test]
async fn open_accepts_a_plain_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("steward.db");
    let store = steward_store_sql::open(path.to_str().unwrap()).await.unwrap();
    assert!(store.list_flows(WS, false).await.unwrap().is_empty());
    assert!(path.exists());
}
