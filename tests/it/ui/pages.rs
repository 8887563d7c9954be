//! Server-side checks of the pages: each page's HTML is well-formed (parsed
//! as XML), has a `<title>` and a `<main>` landmark, and carries the
//! security headers; posts from another origin or without a session are
//! refused; hostile query strings get an HTML error page; and the device
//! list's filters and cursor pages in the JSON API.

use quick_xml::Reader;
use quick_xml::events::Event;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::Value;

use super::{Env, PASSWORD};
use cfgsnap::api::Role;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// Signs in through the form; returns the `Cookie` header value.
async fn sign_in(env: &Env, user: &str) -> String {
    let body =
        serde_urlencoded::to_string([("username", user), ("password", PASSWORD)]).expect("form");
    let resp = client()
        .post(format!("{}/ui/login", env.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, env.base.as_str())
        .body(body)
        .send()
        .await
        .expect("answered");
    if resp.status() != 303 {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let msg = text
            .split("role=\"alert\">")
            .nth(1)
            .and_then(|t| t.split('<').next())
            .unwrap_or("");
        panic!("signing in as {user}: {status} {msg}");
    }
    let cookie = resp
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

/// Parses `html` as XML; returns the names of the elements it holds and the
/// `<title>` text.
fn parse(what: &str, html: &str) -> (Vec<String>, String) {
    let mut reader = Reader::from_str(html);
    reader.config_mut().check_end_names = true;
    let (mut names, mut title, mut in_title) = (Vec::new(), String::new(), false);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                in_title = name == "title";
                names.push(name);
            }
            Ok(Event::Empty(e)) => {
                names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(Event::Text(t)) if in_title => title.push_str(&String::from_utf8_lossy(&t)),
            Ok(Event::End(_)) => in_title = false,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "{what} is not well-formed at byte {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    (names, title)
}

pub async fn every_page_is_well_formed_with_security_headers(env: &Env, sid: i64) {
    let admin = sign_in(env, "ada").await;
    let dev = "/ui/t/t1/devices/dev-0";
    let pages = [
        "/ui/login".to_owned(),
        "/ui/t/t1/devices".to_owned(),
        "/ui/t/t1/devices?status=ok&sort=id&limit=1".to_owned(),
        "/ui/t/t1/devices?sort=last_change&limit=1".to_owned(),
        "/ui/t/t1/devices?sort=status".to_owned(),
        dev.to_owned(),
        format!("{dev}?done=rate_limited&wait=5"),
        format!("{dev}/snapshots/{sid}"),
        format!("{dev}/diff?to={sid}"),
        format!("{dev}/diff?to={sid}&view=split"),
        "/ui/t/t1/changes".to_owned(),
        "/ui/t/t1/search?q=radius".to_owned(),
        "/ui/t/t1/search?q=radius&scope=history".to_owned(),
        "/ui/t/t1/audit?action=login_succeeded".to_owned(),
        "/ui/t/t1/notifications".to_owned(),
        "/ui/t/t1/notifications?status=pending".to_owned(),
        "/ui/t/t1/notifications?status=%3Cscript%3E".to_owned(),
        "/ui/account".to_owned(),
        "/ui/t/t1/devices/nope".to_owned(),
        "/ui/t/t2/devices".to_owned(),
        "/ui/t/t1/devices?status=%3Cscript%3E".to_owned(),
        "/ui/nowhere".to_owned(),
        format!("{dev}/diff?from=abc&to={sid}"),
        format!("{dev}/diff?from=999999&to={sid}"),
        format!("/ui/t/t1/devices/dev-1/snapshots/{sid}"),
        format!("{dev}/snapshots/-1"),
    ];
    for path in &pages {
        let resp = client()
            .get(format!("{}{path}", env.base))
            .header(COOKIE, admin.as_str())
            .send()
            .await
            .expect("answered");
        let headers = resp.headers().clone();
        let status = resp.status().as_u16();
        let html = resp.text().await.expect("a body");
        assert!(
            !html.contains(&env.secret)
                || path.contains("/snapshots/")
                || path.contains("/diff")
                || path.contains("/search"),
            "{path}"
        );
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
        assert_eq!(
            headers.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..]),
            "{path}"
        );
        assert!(headers.contains_key("referrer-policy"), "{path}");
        assert!(
            headers
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/html")),
            "{path} ({status})"
        );
        let (names, title) = parse(path, &html);
        assert!(!title.trim().is_empty(), "{path} has no title");
        assert!(names.iter().any(|n| n == "main"), "{path} has no <main>");
        assert!(
            !html.contains("style=\"") && !html.contains("<script>"),
            "{path} has inline style or script"
        );
        let expected = match path.as_str() {
            p if p.ends_with("/nope") || p.ends_with("/nowhere") => 404,
            p if p.contains("from=abc") || p.ends_with("/-1") => 400,
            p if p.contains("999999") || p.contains("dev-1/snapshots") => 404,
            p if p.contains("/t2/") => 403,
            p if p.contains("%3Cscript") => 400,
            _ => 200,
        };
        assert_eq!(status, expected, "{path}");
    }
    refused_posts(env, &admin).await;
    super_admin_switches_tenant(env).await;
    device_list_pages_in_the_api(env).await;
}

/// A `super_admin` opens any tenant's fleet through the switch; an admin
/// of `t1` gets `403` for `t2`.
async fn super_admin_switches_tenant(env: &Env) {
    let root = sign_in(env, "root").await;
    let get = |path: &str, cookie: &str| {
        client()
            .get(format!("{}{path}", env.base))
            .header(COOKIE, cookie.to_owned())
            .send()
    };
    let home = get("/ui/", &root).await.expect("answered");
    assert_eq!(
        home.headers().get(LOCATION).map(|v| v.as_bytes()),
        Some(&b"/ui/t/t1/devices"[..])
    );
    let switch = get("/ui/tenant?tenant=t2", &root).await.expect("answered");
    assert_eq!(
        switch.headers().get(LOCATION).map(|v| v.as_bytes()),
        Some(&b"/ui/t/t2/devices"[..])
    );
    let fleet = get("/ui/t/t2/devices", &root).await.expect("answered");
    assert_eq!(fleet.status(), 200);
    let html = fleet.text().await.expect("body");
    assert!(
        html.contains("id=\"tenant-switch\""),
        "the switch is offered"
    );
    let admin = sign_in(env, "ada").await;
    let refused = get("/ui/tenant?tenant=t2", &admin).await.expect("answered");
    assert_eq!(refused.status(), 403);
    let hostile = get("/ui/tenant?tenant=..%2F..%2Fetc", &root)
        .await
        .expect("answered");
    assert_eq!(hostile.status(), 400);
}

/// Posts the browser never makes: another origin, no session.
async fn refused_posts(env: &Env, admin: &str) {
    let backup = format!("{}/ui/t/t1/devices/dev-0/backup", env.base);
    let page = client()
        .get(format!("{}/ui/account", env.base))
        .header(COOKIE, admin)
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("body");
    let token = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    let form = serde_urlencoded::to_string([("csrf_token", token.as_str())]).expect("form");
    let post = |origin: &'static str, cookie: Option<&str>| {
        let mut request = client()
            .post(&backup)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ORIGIN, origin)
            .body(form.clone());
        if let Some(c) = cookie {
            request = request.header(COOKIE, c);
        }
        request.send()
    };
    let other = post("http://evil.example", Some(admin))
        .await
        .expect("answered");
    assert_eq!(other.status(), 403, "a post from another origin");
    let anonymous = post("http://evil.example", None).await.expect("answered");
    assert_eq!(anonymous.status(), 303);
    assert_eq!(
        anonymous.headers().get(LOCATION).map(|v| v.as_bytes()),
        Some(&b"/ui/login"[..])
    );
    let login = client()
        .post(format!("{}/ui/login", env.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("username=ada&password=wrong-password")
        .send()
        .await
        .expect("answered");
    assert_eq!(login.status(), 401);
    let html = login.text().await.expect("body");
    assert!(html.contains("invalid user name or password"));
    let hostile = client()
        .post(format!("{}/ui/login", env.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("username=%3Cscript%3E&nonsense")
        .send()
        .await
        .expect("answered");
    assert_eq!(hostile.status(), 400, "a malformed form is an HTML 400");
    assert!(!hostile.text().await.expect("body").contains("<script>"));
}

/// `GET /api/tenants/t1/devices` with no parameters lists all; with
/// `limit` it pages by id with `next_after` / `prev_before`; `q` and
/// `status` filter; bad values are `400`.
async fn device_list_pages_in_the_api(env: &Env) {
    let token = env.infra.token("vic", "t1", Role::Viewer);
    let get = |query: &'static str| {
        client()
            .get(format!("{}/api/tenants/t1/devices{query}", env.base))
            .bearer_auth(&token)
            .send()
    };
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["device_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let all: Value = get("").await.expect("answered").json().await.expect("json");
    assert_eq!(ids(&all), ["dev-0", "dev-1", "dev-2"]);
    assert!(all["next_after"].is_null());
    let first: Value = get("?limit=2")
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&first), ["dev-0", "dev-1"]);
    assert_eq!(first["next_after"], "dev-1");
    let second: Value = get("?limit=2&after=dev-1")
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&second), ["dev-2"]);
    assert!(second["next_after"].is_null());
    assert_eq!(second["prev_before"], "dev-2");
    let back: Value = get("?limit=2&before=dev-2")
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&back), ["dev-0", "dev-1"]);
    let q: Value = get("?q=ROUTER%202")
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&q), ["dev-2"]);
    let ok: Value = get("?status=ok")
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert!(ids(&ok).contains(&"dev-0".to_owned()));
    let never: Value = get("?status=never&q=%25")
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert!(ids(&never).is_empty(), "a % in q is a literal character");
    for bad in [
        "?limit=0",
        "?limit=201",
        "?status=fine",
        "?after=a.b",
        "?limit=x",
    ] {
        let resp = get(bad).await.expect("answered");
        assert_eq!(resp.status(), 400, "{bad}");
    }
}
