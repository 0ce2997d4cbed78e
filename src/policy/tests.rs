use std::io::Write;

use serde_json::Map;

use super::*;

fn principal(user_id: Option<&str>, roles: &[&str]) -> Principal {
    Principal {
        user_id: user_id.map(str::to_owned),
        roles: roles.iter().map(|role| role.to_string()).collect(),
        claims: Map::new(),
    }
}

fn user(user_id: &str) -> Principal {
    principal(Some(user_id), &["USER"])
}

fn record(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(key, value)| (Value::from(*key), value.clone()))
            .collect(),
    )
}

fn policy_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

// Patterns

#[test]
fn exact_pattern_matches_only_that_name() {
    let pattern = MapPattern::new("todos");

    assert!(pattern.matches("todos", None));
    assert!(!pattern.matches("todos2", None));
    assert!(!pattern.matches("todo", None));
}

#[test]
fn star_matches_every_name() {
    let pattern = MapPattern::new("*");

    assert!(pattern.matches("todos", None));
    assert!(pattern.matches("", None));
    assert!(pattern.matches("topic:chat", None));
}

#[test]
fn trailing_star_matches_names_with_that_prefix() {
    let pattern = MapPattern::new("public/*");

    assert!(pattern.matches("public/news", None));
    assert!(pattern.matches("public/", None));
    assert!(!pattern.matches("public", None));
    assert!(!pattern.matches("private/news", None));
}

#[test]
fn star_anywhere_but_the_end_is_literal() {
    let pattern = MapPattern::new("a*b");

    assert!(pattern.matches("a*b", None));
    assert!(!pattern.matches("axb", None));
}

#[test]
fn user_id_placeholder_matches_the_principals_own_map_only() {
    let pattern = MapPattern::new("notes/{userId}");

    assert!(pattern.matches("notes/alice", Some("alice")));
    assert!(!pattern.matches("notes/bob", Some("alice")));
    assert!(!pattern.matches("notes/alice2", Some("alice")));
}

#[test]
fn user_id_placeholder_followed_by_star_matches_by_prefix() {
    let pattern = MapPattern::new("user-{userId}-*");

    assert!(pattern.matches("user-alice-todos", Some("alice")));
    assert!(pattern.matches("user-alice-", Some("alice")));
    assert!(!pattern.matches("user-bob-todos", Some("alice")));
}

#[test]
fn user_id_placeholder_never_matches_a_principal_without_user_id() {
    let pattern = MapPattern::new("notes/{userId}");

    assert!(!pattern.matches("notes/undefined", None));
    assert!(!pattern.matches("notes/", None));
    assert!(!pattern.matches("notes/{userId}", None));
}

#[test]
fn user_id_is_literal_text_not_a_wildcard() {
    let pattern = MapPattern::new("notes/{userId}");

    assert!(!pattern.matches("notes/bob", Some("*")));
    assert!(pattern.matches("notes/*", Some("*")));
    assert!(!pattern.matches("notes/a{userId}", Some("$&")));
}

#[test]
fn only_the_first_user_id_placeholder_is_substituted() {
    let pattern = MapPattern::new("{userId}/{userId}");

    assert!(pattern.matches("alice/{userId}", Some("alice")));
    assert!(!pattern.matches("alice/alice", Some("alice")));
}

// Actions and checks

#[test]
fn each_action_is_granted_by_itself_or_by_all_only() {
    let cases = [
        (Permission::Read, Action::Read, true),
        (Permission::Read, Action::Put, false),
        (Permission::Read, Action::Remove, false),
        (Permission::Put, Action::Read, false),
        (Permission::Put, Action::Put, true),
        (Permission::Put, Action::Remove, false),
        (Permission::Remove, Action::Read, false),
        (Permission::Remove, Action::Put, false),
        (Permission::Remove, Action::Remove, true),
        (Permission::All, Action::Read, true),
        (Permission::All, Action::Put, true),
        (Permission::All, Action::Remove, true),
    ];

    for (permission, action, expected) in cases {
        let set = PolicySet::new(vec![Policy::new("USER", "todos", [permission])]);

        let allowed = set.check(&user("alice"), "todos", action);

        assert_eq!(allowed, expected, "{permission:?} for {action}");
    }
}

#[test]
fn a_write_removes_when_op_type_is_remove_or_the_value_is_nil() {
    let cases = [
        (Some("REMOVE"), false, Action::Remove),
        (Some("PUT"), true, Action::Remove),
        (None, true, Action::Remove),
        (Some("PUT"), false, Action::Put),
        (None, false, Action::Put),
        (Some("OR_ADD"), false, Action::Put),
        (Some("OR_REMOVE"), false, Action::Put),
    ];

    for (op_type, nil_value, expected) in cases {
        assert_eq!(
            Action::for_write(op_type, nil_value),
            expected,
            "{op_type:?}"
        );
    }
}

#[test]
fn admin_may_do_everything_without_any_policy() {
    let set = PolicySet::new(Vec::new());
    let admin = principal(None, &["USER", "ADMIN"]);

    for action in [Action::Read, Action::Put, Action::Remove] {
        assert_eq!(set.decide(&admin, "todos", action), Decision::Admin);
        assert_eq!(set.decide(&admin, "$sys/stats", action), Decision::Admin);
    }
}

#[test]
fn system_maps_are_refused_to_everyone_but_admin() {
    let set = PolicySet::new(vec![Policy::new("USER", "$sys/*", [Permission::All])]);

    let decision = set.decide(&user("alice"), "$sys/cluster", Action::Read);

    assert_eq!(decision, Decision::SystemResource);
    assert!(!decision.is_allowed());
}

#[test]
fn default_policy_lets_users_do_everything_but_touch_system_maps() {
    let set = PolicySet::upstream_default();
    let alice = user("alice");

    assert!(set.check(&alice, "todos", Action::Read));
    assert!(set.check(&alice, "todos", Action::Put));
    assert!(set.check(&alice, "todos", Action::Remove));
    assert!(set.check(&alice, &topic_resource("chat"), Action::Put));
    assert!(set.check(&alice, "lock-1", Action::Put));
    assert!(!set.check(&alice, "$sys/stats", Action::Read));
}

#[test]
fn default_policy_refuses_principals_without_the_user_role() {
    let set = PolicySet::upstream_default();

    assert!(!set.check(&principal(Some("bob"), &["GUEST"]), "todos", Action::Read));
    assert!(!set.check(&principal(Some("bob"), &[]), "todos", Action::Read));
}

#[test]
fn any_role_of_the_principal_can_grant() {
    let set = PolicySet::new(vec![
        Policy::new("READER", "docs", [Permission::Read]),
        Policy::new("WRITER", "docs", [Permission::Put]),
    ]);
    let both = principal(Some("carol"), &["READER", "WRITER"]);
    let reader = principal(Some("dave"), &["READER"]);

    assert_eq!(set.decide(&both, "docs", Action::Read), Decision::Policy(0));
    assert_eq!(set.decide(&both, "docs", Action::Put), Decision::Policy(1));
    assert_eq!(
        set.decide(&both, "docs", Action::Remove),
        Decision::NoPolicy
    );
    assert!(!set.check(&reader, "docs", Action::Put));
}

#[test]
fn roles_are_compared_exactly() {
    let set = PolicySet::new(vec![Policy::new("USER", "*", [Permission::All])]);

    assert!(!set.check(&principal(None, &["user"]), "todos", Action::Read));
    assert!(!set.check(&principal(None, &["admin"]), "$sys/stats", Action::Read));
}

#[test]
fn user_id_policies_give_each_user_their_own_maps() {
    let set = PolicySet::new(vec![Policy::new(
        "USER",
        "private/{userId}/*",
        [Permission::All],
    )]);

    assert!(set.check(&user("alice"), "private/alice/notes", Action::Put));
    assert!(!set.check(&user("alice"), "private/bob/notes", Action::Read));
    assert!(!set.check(
        &principal(None, &["USER"]),
        "private/undefined/notes",
        Action::Read
    ));
}

#[test]
fn topics_are_checked_as_topic_resources() {
    let set = PolicySet::new(vec![Policy::new(
        "USER",
        "topic:chat/*",
        [Permission::Read],
    )]);

    assert!(set.check(&user("alice"), &topic_resource("chat/lobby"), Action::Read));
    assert!(!set.check(&user("alice"), &topic_resource("chat/lobby"), Action::Put));
    assert!(!set.check(&user("alice"), "chat/lobby", Action::Read));
}

// Field-level security

#[test]
fn a_map_value_keeps_only_the_allowed_fields() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "people", [Permission::Read]).with_fields(["name", "age"])
    ]);
    let value = record(&[
        ("name", Value::from("Ann")),
        ("salary", Value::from(100)),
        ("age", Value::from(30)),
    ]);

    let filtered = set.filter(&user("alice"), "people", &value);

    assert_eq!(
        filtered,
        record(&[("name", Value::from("Ann")), ("age", Value::from(30))])
    );
}

#[test]
fn nested_maps_are_kept_or_dropped_whole() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "people", [Permission::All]).with_fields(["address"])
    ]);
    let address = record(&[("city", Value::from("Oslo")), ("secret", Value::from(1))]);
    let value = record(&[
        ("address", address.clone()),
        ("bank", record(&[("iban", Value::from("NO93"))])),
    ]);

    let filtered = set.filter(&user("alice"), "people", &value);

    assert_eq!(filtered, record(&[("address", address)]));
}

#[test]
fn arrays_are_filtered_element_by_element() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "tags", [Permission::Read]).with_fields(["a"])
    ]);
    let value = Value::Array(vec![
        record(&[("a", Value::from(1)), ("b", Value::from(2))]),
        Value::from("plain"),
        Value::Array(vec![record(&[("b", Value::from(3))])]),
    ]);

    let filtered = set.filter(&user("alice"), "tags", &value);

    assert_eq!(
        filtered,
        Value::Array(vec![
            record(&[("a", Value::from(1))]),
            Value::from("plain"),
            Value::Array(vec![record(&[])]),
        ])
    );
}

#[test]
fn scalars_pass_a_field_list_unchanged() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "counters", [Permission::Read]).with_fields(["a"])
    ]);

    for value in [
        Value::from(42),
        Value::from("text"),
        Value::Boolean(true),
        Value::Nil,
    ] {
        assert_eq!(set.filter(&user("alice"), "counters", &value), value);
    }
}

#[test]
fn keys_that_are_not_text_are_dropped_by_a_field_list() {
    let view = ReadView::Fields(BTreeSet::from(["1".to_owned()]));
    let value = Value::Map(vec![
        (Value::from(1), Value::from("int key")),
        (Value::from("1"), Value::from("text key")),
    ]);

    let filtered = view.filter(&value);

    assert_eq!(filtered, record(&[("1", Value::from("text key"))]));
}

#[test]
fn without_read_access_every_value_becomes_nil() {
    let set = PolicySet::new(vec![Policy::new("USER", "todos", [Permission::Put])]);
    let alice = user("alice");

    assert_eq!(set.read_view(&alice, "todos"), ReadView::Denied);
    assert_eq!(
        set.filter(&alice, "todos", &record(&[("a", Value::from(1))])),
        Value::Nil
    );
    assert_eq!(set.filter(&alice, "todos", &Value::from(7)), Value::Nil);
    assert_eq!(
        set.filter(&alice, "todos", &Value::Array(vec![Value::from(7)])),
        Value::Nil
    );
}

#[test]
fn field_lists_of_policies_that_do_not_grant_read_are_ignored() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "people", [Permission::Read]).with_fields(["name"]),
        Policy::new("USER", "people", [Permission::Put]).with_fields(["salary"]),
    ]);

    let view = set.read_view(&user("alice"), "people");

    assert_eq!(view, ReadView::Fields(BTreeSet::from(["name".to_owned()])));
}

#[test]
fn field_lists_of_all_reading_policies_are_combined_across_roles() {
    let set = PolicySet::new(vec![
        Policy::new("HR", "people", [Permission::Read]).with_fields(["salary"]),
        Policy::new("USER", "*", [Permission::All]).with_fields(["name"]),
        Policy::new("OTHER", "people", [Permission::Read]).with_fields(["ssn"]),
    ]);
    let hr = principal(Some("erin"), &["USER", "HR"]);

    let view = set.read_view(&hr, "people");

    assert_eq!(
        view,
        ReadView::Fields(BTreeSet::from(["name".to_owned(), "salary".to_owned()]))
    );
}

#[test]
fn one_reading_policy_with_every_field_shows_the_whole_value() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "people", [Permission::Read]).with_fields(["name"]),
        Policy::new("USER", "peo*", [Permission::Read]),
    ]);
    let value = record(&[("name", Value::from("Ann")), ("salary", Value::from(1))]);

    let filtered = set.filter(&user("alice"), "people", &value);

    assert_eq!(filtered, value);
}

#[test]
fn an_empty_or_starred_field_list_means_every_field() {
    assert_eq!(
        FieldAccess::from_list(Vec::<String>::new()),
        FieldAccess::All
    );
    assert_eq!(FieldAccess::from_list(["name", "*"]), FieldAccess::All);
    assert_eq!(
        FieldAccess::from_list(["name"]),
        FieldAccess::Only(BTreeSet::from(["name".to_owned()]))
    );
}

#[test]
fn admin_sees_whole_values_and_others_see_nothing_of_system_maps() {
    let set = PolicySet::new(vec![
        Policy::new("USER", "*", [Permission::Read]).with_fields(["id"])
    ]);
    let value = record(&[("id", Value::from("n1")), ("status", Value::from("UP"))]);

    let admin = set.filter(&principal(None, &["ADMIN"]), "$sys/cluster", &value);
    let alice = set.filter(&user("alice"), "$sys/cluster", &value);

    assert_eq!(admin, value);
    assert_eq!(alice, Value::Nil);
}

// Loading

#[test]
fn a_policy_file_in_upstream_shape_loads() {
    let file = policy_file(
        r#"[
            {"role": "USER", "mapNamePattern": "*", "actions": ["READ", "PUT"]},
            {"role": "HR", "mapNamePattern": "people", "actions": ["ALL"],
             "allowedFields": ["name", "salary"]},
            {"role": "X", "mapNamePattern": "{userId}", "actions": ["REMOVE"], "allowedFields": null}
        ]"#,
    );

    let set = PolicySet::from_file(file.path()).unwrap();

    assert_eq!(
        set.policies(),
        [
            Policy::new("USER", "*", [Permission::Read, Permission::Put]),
            Policy::new("HR", "people", [Permission::All]).with_fields(["name", "salary"]),
            Policy::new("X", "{userId}", [Permission::Remove]),
        ]
    );
}

#[test]
fn an_empty_policy_file_allows_only_admin() {
    let file = policy_file("[]");

    let set = PolicySet::from_file(file.path()).unwrap();

    assert!(!set.check(&user("alice"), "todos", Action::Read));
    assert!(set.check(&principal(None, &["ADMIN"]), "todos", Action::Read));
}

#[test]
fn a_missing_policy_file_is_a_read_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.json");

    let err = PolicySet::from_file(&path).unwrap_err();

    assert!(matches!(err, PolicyError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.json"), "{err}");
}

#[test]
fn malformed_policy_files_are_json_errors_naming_the_file() {
    let cases = [
        "",
        "not json",
        r#"{"role": "USER", "mapNamePattern": "*", "actions": ["ALL"]}"#,
        r#"[{"role": "USER", "mapNamePattern": "*", "actions": ["WRITE"]}]"#,
        r#"[{"role": "USER", "mapNamePattern": "*", "actions": "ALL"}]"#,
        r#"[{"role": "USER", "mapNamePattern": "*"}]"#,
        r#"[{"role": "USER", "mapNamePattern": "*", "actions": ["ALL"], "allowedfields": ["a"]}]"#,
        r#"[{"role": 1, "mapNamePattern": "*", "actions": ["ALL"]}]"#,
    ];

    for text in cases {
        let file = policy_file(text);

        let err = PolicySet::from_file(file.path()).unwrap_err();

        assert!(matches!(err, PolicyError::Json { .. }), "{text}: {err:?}");
        assert!(
            err.to_string().contains(&file.path().display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn policies_that_cannot_mean_what_they_say_are_refused_with_their_index() {
    let cases = [
        (
            r#"{"role": "", "mapNamePattern": "*", "actions": ["ALL"]}"#,
            "`role`",
        ),
        (
            r#"{"role": "USER", "mapNamePattern": "", "actions": ["ALL"]}"#,
            "`mapNamePattern`",
        ),
        (
            r#"{"role": "USER", "mapNamePattern": "*", "actions": []}"#,
            "`actions`",
        ),
        (
            r#"{"role": "USER", "mapNamePattern": "*", "actions": ["READ"], "allowedFields": []}"#,
            "`allowedFields`",
        ),
    ];

    for (bad, field) in cases {
        let text =
            format!(r#"[{{"role": "USER", "mapNamePattern": "*", "actions": ["ALL"]}}, {bad}]"#);
        let file = policy_file(&text);

        let err = PolicySet::from_file(file.path()).unwrap_err();

        assert!(
            matches!(err, PolicyError::Invalid { index: 1, .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(field), "{err}");
        assert!(
            err.to_string().contains(&file.path().display().to_string()),
            "{err}"
        );
    }
}
