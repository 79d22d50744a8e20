//! The provider key store's suite, run against every backend like `conformance.rs`: rows are
//! per team and provider, replaced in place, listed per team only, removed once; rotation finds
//! the rows under other KEKs and replaces a row only if it still holds what was read.

use dojo_test_support::Stores;

dojo_test_support::each_backend!(cases:
    keys_are_per_team_and_provider_and_never_cross,
    rewrap_replaces_only_an_unchanged_row,
);

mod cases {
    use std::sync::Arc;

    use dojo_ids::{TeamId, UserId};
    use dojo_records::key_crypto::{KeyContext, Keyring};
    use dojo_records::{ProviderKeyStore, StoredProviderKey, TeamLimits};

    use super::*;

    const LIMITS: TeamLimits = TeamLimits { max_teams_per_user: 5, max_members_per_team: 5 };
    const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2_K1: &str =
        "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn keys(b: &Stores) -> Arc<dyn ProviderKeyStore> {
        dojo_records::provider_keys(&b.db)
    }

    async fn team(b: &Stores, owner: &str) -> (TeamId, UserId) {
        let user = b.accounts.upsert_user(owner, Some(owner), None).await.expect("user");
        let team = dojo_records::teams(&b.db).create_team(&user.id, owner, LIMITS).await.expect("team");
        (team.team.id, user.id)
    }

    fn sealed(ring: &Keyring, team: &TeamId, provider: &str, key: &str, by: &UserId) -> StoredProviderKey {
        let sealed = ring.seal(KeyContext { team: team.as_str(), provider }, key).expect("seal");
        StoredProviderKey {
            team_id: team.clone(),
            provider: provider.into(),
            sealed,
            last_four: key[key.len() - 4..].into(),
            set_by: by.clone(),
            set_at: 1,
        }
    }

    pub async fn keys_are_per_team_and_provider_and_never_cross(b: Stores) {
        let store = keys(&b);
        let ring = Keyring::parse(K1).expect("ring");
        let (a, ada) = team(&b, "ada").await;
        let (e, eve) = team(&b, "eve").await;
        assert!(!store.put_provider_key(sealed(&ring, &a, "openai", "sk-a-open-1111", &ada)).await.unwrap());
        assert!(!store.put_provider_key(sealed(&ring, &a, "fal", "fal-a-key-2222", &ada)).await.unwrap());
        assert!(!store.put_provider_key(sealed(&ring, &e, "openai", "sk-e-open-3333", &eve)).await.unwrap());
        // Setting again replaces in place.
        assert!(store.put_provider_key(sealed(&ring, &a, "openai", "sk-a-open-4444", &ada)).await.unwrap());
        let listed = store.provider_keys(&a).await.expect("list");
        let names: Vec<(&str, &str)> =
            listed.iter().map(|k| (k.provider.as_str(), k.last_four.as_str())).collect();
        assert_eq!(names, vec![("fal", "2222"), ("openai", "4444")]);
        let row = store.provider_key(&a, "openai").await.unwrap().expect("row");
        let context = KeyContext { team: a.as_str(), provider: "openai" };
        assert_eq!(ring.open(context, &row.sealed).expect("open").expose(), "sk-a-open-4444");
        // Another team's calls never reach team A's rows.
        assert!(store.provider_key(&e, "fal").await.unwrap().is_none());
        assert!(store.delete_provider_key(&e, "fal").await.unwrap().is_none());
        assert_eq!(store.provider_keys(&a).await.unwrap().len(), 2);
        let removed = store.delete_provider_key(&a, "fal").await.unwrap().expect("removed");
        assert_eq!(removed.last_four, "2222");
        assert!(store.delete_provider_key(&a, "fal").await.unwrap().is_none(), "removed once");
        assert_eq!(store.provider_keys(&e).await.unwrap().len(), 1);
    }

    pub async fn rewrap_replaces_only_an_unchanged_row(b: Stores) {
        let store = keys(&b);
        let old = Keyring::parse(K1).expect("ring");
        let new = Keyring::parse(K2_K1).expect("ring");
        let (a, ada) = team(&b, "ada").await;
        store.put_provider_key(sealed(&old, &a, "openai", "sk-a-open-1111", &ada)).await.unwrap();
        store.put_provider_key(sealed(&old, &a, "replicate", "r8-a-key-2222", &ada)).await.unwrap();
        let pending = store.provider_keys_not_under("k2", 100).await.expect("pending");
        assert_eq!(pending.len(), 2);
        // The admin sets replicate again (under k2) after the rotation read it.
        store.put_provider_key(sealed(&new, &a, "replicate", "r8-a-key-3333", &ada)).await.unwrap();
        for row in &pending {
            let context = KeyContext { team: a.as_str(), provider: &row.provider };
            let rewrapped = new.rewrap(context, &row.sealed).expect("rewrap").expect("a new value");
            let replaced = store.rewrap_provider_key(row, &rewrapped).await.expect("rewrap");
            assert_eq!(replaced, row.provider == "openai", "{}", row.provider);
        }
        assert!(store.provider_keys_not_under("k2", 100).await.unwrap().is_empty());
        let replicate = store.provider_key(&a, "replicate").await.unwrap().expect("row");
        let context = KeyContext { team: a.as_str(), provider: "replicate" };
        assert_eq!(
            new.open(context, &replicate.sealed).unwrap().expose(),
            "r8-a-key-3333",
            "the admin's key stays"
        );
    }
}
