//! Slack, Teams and Discord targets get their incoming-webhook JSON with
//! the summary, the changed components and the link.

use cfgsnap_testkit::on_both_stacks;

use super::secrets::change_r1;
use super::{Dispatch, Receiver, notify_config, notify_section};
use crate::store::TestStore;

fn chat_target(kind: &str, url: &str) -> String {
    format!(
        "[[notifications]]\nname = \"{kind}\"\nkind = \"{kind}\"\nurl = \"{url}\"\nevents = [\"config.changed\"]\n"
    )
}

async fn chat_targets_get_summary_changes_and_link(t: &TestStore) {
    // Arrange
    let receiver = Receiver::start(&[]).await;
    let toml = format!(
        "{}{}{}{}",
        notify_section(""),
        chat_target("slack", &receiver.url("/slack")),
        chat_target("teams", &receiver.url("/teams")),
        chat_target("discord", &receiver.url("/discord")),
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let requests = receiver.wait_for(3).await;
    dispatch.stop().await;
    // Assert
    let json = |path: &str| {
        requests
            .iter()
            .find(|r| r.path == path)
            .expect("a request")
            .json()
    };
    let link = "https://cfgsnap.example/ui/t/t1/devices/r1";
    let slack = json("/slack")["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        slack.contains("router-r1 (r1): configuration changed"),
        "{slack}"
    );
    assert!(
        slack.contains("ip/firewall/filter: Added 2 firewall filter rules"),
        "{slack}"
    );
    assert!(
        slack.contains(&format!("<{link}|Open in cfgsnap>")),
        "{slack}"
    );
    let teams = json("/teams");
    let card = &teams["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["actions"][0]["url"], link);
    let discord = json("/discord")["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        discord.contains("configuration changed") && discord.contains(link),
        "{discord}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-signature").is_empty())
    );
    receiver.stop().await;
}

on_both_stacks!(with TestStore; chat_targets_get_summary_changes_and_link);
