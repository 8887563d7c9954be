//! One browser session per stack walks the UI as its users would: sign in,
//! the fleet filtered and paged, a device backed up now (its changed
//! configuration becomes a new version in the timeline), two versions
//! compared in both views with the changed words marked, a download, the
//! deliveries page with the change's failed webhook redelivered, both
//! themes and a phone-width window, sign out; then a viewer, who sees no
//! trigger button, is refused when posting anyway, and sees secrets masked.
//! Hostile names and config lines stay text throughout.

use std::time::Duration;

use super::{Browser, Env, HOSTILE_NAME};
use crate::app::{Stack, on_both_stacks};
use crate::helpers::within;

const LIMIT: Duration = Duration::from_secs(300);

on_both_stacks!(the_ui_works_in_a_real_browser_for_each_role);

async fn the_ui_works_in_a_real_browser_for_each_role(stack: Stack) {
    within(LIMIT, async {
        // Arrange
        let env = Env::start(stack).await;
        let b = Browser::start(&env.base, stack).await;

        // Act + Assert, page by page.
        sign_in_lands_on_the_fleet(&b).await;
        fleet_filters_and_pages(&b).await;
        let (old, new) = back_up_now_adds_a_version(&b).await;
        compare_marks_the_changed_line_in_both_views(&b, old, new).await;
        version_page_downloads_and_stays_inert(&b, new, &env.secret).await;
        search_from_the_header_finds_lines_with_links(&b, &env.secret).await;
        the_other_pages_render(&b).await;
        deliveries_show_the_failure_and_redeliver(&b).await;
        dark_theme_and_phone_width(&b, old, new).await;
        forged_post_without_csrf_is_refused(&b).await;
        sign_out_ends_the_session(&b).await;
        viewer_cannot_trigger_and_sees_secrets_masked(&b, new, &env.secret).await;
        super::pages::every_page_is_well_formed_with_security_headers(&env, new).await;

        b.finish().await;
        env.finish().await;
    })
    .await;
}

async fn sign_in_lands_on_the_fleet(b: &Browser) {
    b.open("/").await;
    b.settle().await;
    assert_eq!(
        b.path().await,
        "/ui/login",
        "/ sends a stranger to the sign-in form"
    );
    b.shot("login").await;
    b.sign_in("ada").await;
    assert_eq!(b.path().await, "/ui/t/t1/devices");
    assert_eq!(b.count("tr.device-row").await, 3);
}

async fn fleet_filters_and_pages(b: &Browser) {
    // Filter by text: the two devices named "router N".
    b.wait("#q").await.send_keys("router").await.expect("types");
    b.click("#filter").await;
    assert_eq!(b.count("tr.device-row").await, 2);
    // Pages of two by id: dev-0, dev-1, then dev-2 alone, and back.
    b.open("/ui/t/t1/devices?sort=id&limit=2").await;
    assert_eq!(b.count("tr.device-row").await, 2);
    assert_eq!(b.count("#prev-page").await, 0);
    b.click("#next-page").await;
    assert_eq!(b.count("tr.device-row").await, 1);
    assert_eq!(b.text("a.device-link").await, "router 2");
    b.click("#prev-page").await;
    assert_eq!(b.count("tr.device-row").await, 2);
    assert_eq!(b.count("#next-page").await, 1);
    // The hostile name is text: no script ran, no image was made.
    assert_eq!(
        b.js("return document.querySelector('a.device-link').textContent")
            .await,
        HOSTILE_NAME
    );
    assert!(
        b.js("return window.__xss === undefined && document.images.length === 0")
            .await
            == true
    );
    b.open("/ui/t/t1/devices").await;
    b.shot("fleet-light").await;
}

/// Backs dev-0 up (its export changes every time) and returns the ids of
/// the versions before and after.
async fn back_up_now_adds_a_version(b: &Browser) -> (i64, i64) {
    // The scheduled first backup lands shortly after start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        b.open("/ui/t/t1/devices/dev-0").await;
        if b.count("tr.version-row").await >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no first version");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = b.count("tr.version-row").await;
    let old = first_version(b).await;
    // htmx posts the form and swaps the page it is redirected to in place.
    b.click_in_place("#backup-now").await;
    let outcome = b.text("#outcome").await;
    assert!(outcome.contains("new version"), "outcome: {outcome}");
    b.open("/ui/t/t1/devices/dev-0").await;
    assert_eq!(b.count("tr.version-row").await, before + 1);
    let new = first_version(b).await;
    assert!(new > old);
    assert_eq!(
        b.js("return document.querySelector('#device-name').textContent")
            .await,
        HOSTILE_NAME
    );
    assert!(
        b.js("return window.__xss === undefined && document.images.length === 0")
            .await
            == true
    );
    b.shot("device-light").await;
    (old, new)
}

async fn first_version(b: &Browser) -> i64 {
    let id = b
        .js("return document.querySelector('tr.version-row').id.slice(1)")
        .await;
    id.as_str()
        .and_then(|s| s.parse().ok())
        .expect("a version id")
}

async fn compare_marks_the_changed_line_in_both_views(b: &Browser, old: i64, new: i64) {
    // The newest two are preselected.
    b.click("#compare").await;
    let path = b.path().await;
    assert!(
        path.contains(&format!("from={old}")) && path.contains(&format!("to={new}")),
        "{path}"
    );
    assert_eq!(b.text("#added").await, "+1");
    assert_eq!(b.text("#removed").await, "−1");
    // The changed address is marked inside the removed and the added line.
    let del = b.text("tr.del mark").await;
    let add = b.text("tr.add mark").await;
    assert!(
        del.contains("198.51.100.") && add.contains("198.51.100."),
        "{del} / {add}"
    );
    assert_ne!(del, add);
    b.shot("diff-unified-light").await;
    b.click("#view-split").await;
    let del = b.text("td.del mark").await;
    let add = b.text("td.add mark").await;
    assert!(
        del.contains("198.51.100.") && add.contains("198.51.100."),
        "{del} / {add}"
    );
    b.shot("diff-split-light").await;
    // The semantic diff lists the changed item above the line diff.
    let semantic = b.text("#semantic").await;
    assert!(semantic.contains("address-list"), "{semantic}");
    // The unchanged stretches fold and open without script.
    assert!(b.count("details.fold").await >= 1);
}

async fn version_page_downloads_and_stays_inert(b: &Browser, new: i64, secret: &str) {
    b.open(&format!("/ui/t/t1/devices/dev-0/snapshots/{new}"))
        .await;
    let hostile = b.js("return Array.from(document.querySelectorAll('td.text')).map(t => t.textContent).find(t => t.startsWith('set name='))").await;
    assert_eq!(hostile, super::HOSTILE_LINE);
    assert!(
        b.js("return window.__xss === undefined && document.images.length === 0")
            .await
            == true
    );
    assert!(b.count("tr.menu").await >= 3, "menu lines are marked");
    // An admin sees the secret (auth.reveal_secrets_role = admin).
    let shown = b
        .js("return document.querySelector('#config').textContent")
        .await;
    assert!(
        shown.as_str().is_some_and(|t| t.contains(secret)),
        "the admin's export is masked"
    );
    b.shot("version-light").await;
    // Download: the link the button points to serves the .rsc as an attachment.
    let got = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('#download').href)
               .then(r => r.text().then(t => done([r.status, r.headers.get('content-disposition'), t.includes('/radius')])));",
        )
        .await;
    assert_eq!(got[0], 200);
    let disposition = got[1].as_str().unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"router-")
            && disposition.ends_with(".rsc\""),
        "{disposition}"
    );
    assert_eq!(got[2], true);
}

async fn search_from_the_header_finds_lines_with_links(b: &Browser, secret: &str) {
    b.open("/ui/t/t1/devices").await;
    let field = b.wait("#header-search").await;
    field.send_keys("198.51.100.").await.expect("types");
    field.send_keys("\u{E007}").await.expect("presses Enter");
    b.settle().await;
    assert_eq!(b.path().await.split('?').next(), Some("/ui/t/t1/search"));
    assert!(
        b.count("li.hit").await >= 1,
        "no hit for the changed address"
    );
    let mark = b.text("li.hit mark").await;
    assert!(mark.contains("198.51.100."), "{mark}");
    b.shot("search-light").await;
    // A hit links to its version at the line.
    b.click("li.hit a").await;
    assert!(b.path().await.contains("/snapshots/"));
    // An admin finds the secret itself (auth.reveal_secrets_role = admin).
    b.open(&format!("/ui/t/t1/search?q={secret}")).await;
    assert!(b.count("li.hit").await >= 1, "the admin's search is masked");
    // A bad regex is an error on the page, not a failure.
    b.open("/ui/t/t1/search?q=%28&regex=true").await;
    assert!(b.text("#search-error").await.contains("regular expression"));
}

async fn the_other_pages_render(b: &Browser) {
    for (path, name, heading) in [
        ("/ui/t/t1/changes", "changes", "Recent changes"),
        ("/ui/t/t1/audit", "audit", "Audit log"),
        ("/ui/account", "account", "Account"),
    ] {
        b.open(path).await;
        assert!(b.text("h1").await.starts_with(heading), "{path}");
        b.shot(&format!("{name}-light")).await;
    }
    // The feed filtered by component shows dev-0's address-list changes.
    b.open("/ui/t/t1/changes?component=ip/firewall/address-list")
        .await;
    assert!(b.count("ol.feed > li").await >= 1);
    b.open("/ui/t/t1/nothing-here").await;
    assert_eq!(b.text("h1").await, "Not found");
    b.shot("error-404").await;
}

/// Reloads `path` until `css`'s text is `want` (the dispatcher works
/// beside the browser).
async fn reload_until(b: &Browser, path: &str, css: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        b.open(path).await;
        if b.count(css).await > 0 && b.text(css).await == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} never read {want:?} on {path}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn deliveries_show_the_failure_and_redeliver(b: &Browser) {
    // The backup above changed dev-0: its config.changed went to a port
    // where nothing listens, failed once and waits an hour for the next try.
    b.open("/ui/t/t1/devices").await;
    b.click("#nav-deliveries").await;
    let path = "/ui/t/t1/notifications?status=pending";
    reload_until(b, path, "tr.delivery-row td.attempts", "1").await;
    assert!(
        b.text("tr.delivery-row .last-error")
            .await
            .contains("connect"),
        "the last error names the failed connection"
    );
    assert!(
        b.text("tr.delivery-row td:nth-child(8)")
            .await
            .starts_with("in ")
    );
    b.shot("deliveries-light").await;
    // Redeliver: queued now, so the dispatcher tries again at once.
    b.click("tr.delivery-row button.redeliver").await;
    assert_eq!(
        b.path().await,
        "/ui/t/t1/notifications?status=pending&done=redelivered"
    );
    assert_eq!(b.text("#outcome").await, "Queued for delivery again.");
    reload_until(b, path, "tr.delivery-row td.attempts", "2").await;
    // Filtered to delivered: none, as nothing listens.
    b.open("/ui/t/t1/notifications?status=delivered").await;
    assert_eq!(b.count("tr.delivery-row").await, 0);
    assert_eq!(b.count("#no-deliveries").await, 1);
}

async fn dark_theme_and_phone_width(b: &Browser, old: i64, new: i64) {
    b.open("/ui/t/t1/devices").await;
    b.wait("#theme-select")
        .await
        .select_by_value("dark")
        .await
        .expect("selects");
    b.click("#theme-apply").await;
    assert_eq!(
        b.path().await,
        "/ui/t/t1/devices",
        "the theme form returns to the page"
    );
    assert_eq!(
        b.js("return document.documentElement.dataset.theme").await,
        "dark"
    );
    assert_eq!(
        b.js("return getComputedStyle(document.body).backgroundColor")
            .await,
        "rgb(13, 17, 23)"
    );
    let diff = format!("/ui/t/t1/devices/dev-0/diff?from={old}&to={new}");
    let pages = [
        ("fleet", "/ui/t/t1/devices".to_owned()),
        ("device", "/ui/t/t1/devices/dev-0".to_owned()),
        ("diff-unified", diff.clone()),
        ("diff-split", format!("{diff}&view=split")),
        ("version", format!("/ui/t/t1/devices/dev-0/snapshots/{new}")),
    ];
    for (name, path) in &pages {
        b.open(path).await;
        b.shot(&format!("{name}-dark")).await;
    }
    b.size(390, 844).await;
    for (name, path) in &pages[..4] {
        b.open(path).await;
        b.shot(&format!("{name}-phone-dark")).await;
        // Nothing sticks out sideways on a phone.
        let overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        let wide = b.js("const w = document.documentElement.clientWidth; return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > w + 1).slice(0, 5).map(e => e.tagName + '.' + e.className).join(' ')").await;
        assert!(
            overflow.as_i64().is_some_and(|o| o <= 1),
            "{name} overflows by {overflow}: {wide}"
        );
    }
    b.wait("#theme-select")
        .await
        .select_by_value("light")
        .await
        .expect("selects");
    b.click("#theme-apply").await;
    for (name, path) in &pages[..3] {
        b.open(path).await;
        b.shot(&format!("{name}-phone-light")).await;
    }
    b.size(1280, 900).await;
}

async fn forged_post_without_csrf_is_refused(b: &Browser) {
    b.open("/ui/t/t1/devices/dev-0").await;
    let status = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             fetch('/ui/t/t1/devices/dev-0/backup', {method: 'POST', body: new URLSearchParams({csrf_token: 'forged'})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403);
}

async fn sign_out_ends_the_session(b: &Browser) {
    b.click("#sign-out").await;
    assert_eq!(b.path().await, "/ui/login");
    b.open("/ui/t/t1/devices").await;
    assert_eq!(
        b.path().await,
        "/ui/login",
        "the ended session no longer opens pages"
    );
}

async fn viewer_cannot_trigger_and_sees_secrets_masked(b: &Browser, new: i64, secret: &str) {
    b.sign_in("vic").await;
    b.open("/ui/t/t1/devices/dev-0").await;
    assert_eq!(
        b.count("#backup-now").await,
        0,
        "a viewer has no trigger button"
    );
    assert_eq!(b.count("#reset-host-key").await, 0);
    assert_eq!(b.count("#nav-deliveries").await, 0, "no deliveries link");
    // Posting anyway, with the session's own CSRF token: 403.
    let status = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             const token = document.querySelector('input[name=csrf_token]').value;
             fetch('/ui/t/t1/devices/dev-0/backup', {method: 'POST', body: new URLSearchParams({csrf_token: token})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403);
    let status = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             const token = document.querySelector('input[name=csrf_token]').value;
             fetch('/ui/t/t1/notifications/1/redeliver', {method: 'POST', body: new URLSearchParams({csrf_token: token})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403, "a viewer's redeliver");
    b.open(&format!("/ui/t/t1/devices/dev-0/snapshots/{new}"))
        .await;
    let text = b
        .js("return document.querySelector('#config').textContent")
        .await;
    let text = text.as_str().unwrap_or_default();
    assert!(!text.contains(secret), "the viewer saw the secret");
    assert!(
        text.contains("secret=********"),
        "the viewer's export is not masked"
    );
    b.shot("version-viewer").await;
    // Searching for the secret finds nothing for a viewer.
    b.open(&format!("/ui/t/t1/search?q={secret}")).await;
    assert_eq!(
        b.count("li.hit").await,
        0,
        "the viewer's search matched the secret"
    );
    assert_eq!(b.count("#no-hits").await, 1);
    // The diff is masked the same way (both sides masked together).
    b.open(&format!("/ui/t/t1/devices/dev-0/diff?to={new}&view=split"))
        .await;
    let text = b
        .js("return document.querySelector('#diff').textContent")
        .await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        !text.contains(secret),
        "the viewer saw the secret in a diff"
    );
    assert!(
        text.contains("secret=********"),
        "the viewer's diff is not masked"
    );
}
