//! The demo page in a real browser: Debian's Chromium, headless, driven through
//! ChromeDriver (`apt-get install chromium chromium-driver`; `.ci/run` installs them). On
//! each framework (`axum::…`, `actix::…`): log in through the form, see the welcome notice
//! once and not after a reload, set a preference and find it after a reload, log out.
//!
//! Missing Chromium or ChromeDriver fails the test, with how to install them. A failing run
//! leaves a screenshot of the page in `target/tmp/browser/`; a passing one leaves
//! `<framework>-desktop.png` and `<framework>-phone.png` there.

mod common;
mod demo;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use demo::Framework;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use session::{MemoryStore, SessionConfig, SessionProvider, http::OutagePolicy};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PATIENCE: Duration = Duration::from_secs(15);

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Where the screenshots go: `target/tmp/browser/`.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// A ChromeDriver of the test's own on a free loopback port, killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    fn start() -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser test needs Debian's Chromium and ChromeDriver \
                 (`apt-get install chromium chromium-driver`; package {package})"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{CHROMEDRIVER} does not start: {error}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session, once ChromeDriver answers.
    async fn session(&self) -> Client {
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // CI runs as root: no sandbox; /dev/shm may be small in containers.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let started = Instant::now();
        loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(error) if started.elapsed() > PATIENCE => {
                    panic!("no Chromium session from {CHROMEDRIVER} at {}: {error}", self.url)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// Evaluates `expression` in the page.
async fn eval(browser: &Client, expression: &str) -> Result<Value, Failure> {
    Ok(browser.execute(&format!("return ({expression});"), vec![]).await?)
}

/// Waits until `expression` is true in the page.
async fn wait_for(browser: &Client, expression: &str) -> Result<(), Failure> {
    let started = Instant::now();
    loop {
        if eval(browser, expression).await? == Value::Bool(true) {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("waited {PATIENCE:?} for `{expression}`").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(browser: &Client, id: &str) -> Result<String, Failure> {
    Ok(browser.find(Locator::Id(id)).await?.text().await?)
}

async fn visible(browser: &Client, id: &str) -> Result<bool, Failure> {
    Ok(browser.find(Locator::Id(id)).await?.is_displayed().await?)
}

async fn reload(browser: &Client) -> Result<(), Failure> {
    browser.refresh().await?;
    wait_for(browser, "document.body.dataset.loaded === 'true'").await
}

macro_rules! check {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+).into());
        }
    };
}

/// What a person does with the page, checked at each step.
async fn tour(browser: &Client, base: &str, name: &str) -> Result<(), Failure> {
    browser.goto(&format!("{base}/")).await?;
    wait_for(browser, "document.body.dataset.loaded === 'true'").await?;
    check!(
        text(browser, "user").await?.contains("not logged in"),
        "a new visitor is anonymous"
    );
    check!(
        text(browser, "store").await? == "test store",
        "the page names the store"
    );

    // Log in through the form, remembered (for 30 days, shown in days): the welcome
    // notice shows, once.
    check!(
        visible(browser, "remember").await?,
        "the remember-me checkbox is offered"
    );
    browser.find(Locator::Id("remember")).await?.click().await?;
    let field = browser.find(Locator::Id("login-name")).await?;
    field.send_keys("alice").await?;
    browser
        .find(Locator::Css("#login button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_for(browser, "document.getElementById('user').textContent === 'alice'").await?;
    check!(visible(browser, "notice").await?, "the welcome notice is shown");
    check!(
        text(browser, "notice").await? == "Welcome alice",
        "the notice reads {:?}",
        text(browser, "notice").await?
    );
    let visits: u64 = text(browser, "visits").await?.parse()?;
    wait_for(
        browser,
        "/\\d+:\\d\\d$/.test(document.getElementById('expires').textContent)",
    )
    .await?;
    let countdown = text(browser, "expires").await?;
    check!(
        countdown.starts_with("29 days 23:") || countdown.starts_with("30 days 0:"),
        "a remembered login lasts 30 days: {countdown}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    check!(
        text(browser, "expires").await? != countdown,
        "the expiry counts down live (still {countdown})"
    );

    // The page as a person sees it on a desktop, just logged in.
    std::fs::write(shots().join(format!("{name}-desktop.png")), browser.screenshot().await?)?;

    reload(browser).await?;
    check!(!visible(browser, "notice").await?, "the notice is gone after a reload");
    check!(
        text(browser, "user").await? == "alice",
        "still logged in after a reload"
    );
    check!(
        text(browser, "visits").await?.parse::<u64>()? == visits + 1,
        "a reload is one more visit"
    );

    // A preference, saved as it changes and there after a reload.
    browser
        .find(Locator::Id("pref-theme"))
        .await?
        .select_by_value("dark")
        .await?;
    wait_for(
        browser,
        "document.getElementById('prefs-status').textContent.includes('saved')",
    )
    .await?;
    reload(browser).await?;
    check!(
        eval(browser, "document.getElementById('pref-theme').value").await? == json!("dark"),
        "the theme preference persisted"
    );
    check!(
        eval(browser, "document.documentElement.dataset.theme").await? == json!("dark"),
        "and applies to the page"
    );

    // A verification code in the expiring slot, shown back.
    browser
        .find(Locator::Id("code-input"))
        .await?
        .send_keys("424242")
        .await?;
    browser
        .find(Locator::Css("#code-form button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_for(
        browser,
        "document.getElementById('code-value').textContent.includes('424242')",
    )
    .await?;

    // Sudo mode: off, then on after the button.
    check!(
        text(browser, "sudo-state").await? == "Sudo mode is off.",
        "not in sudo mode yet: {:?}",
        text(browser, "sudo-state").await?
    );
    browser.find(Locator::Id("sudo-start")).await?.click().await?;
    wait_for(
        browser,
        "document.getElementById('sudo-state').textContent === 'Sudo mode is on.'",
    )
    .await?;
    reload(browser).await?;
    check!(
        text(browser, "sudo-state").await? == "Sudo mode is on.",
        "sudo mode survives a reload"
    );
    eval(browser, "document.getElementById('code').scrollIntoView(), true").await?;
    std::fs::write(
        shots().join(format!("{name}-code-and-sudo.png")),
        browser.screenshot().await?,
    )?;

    // The page on a phone.
    browser.set_window_size(390, 844).await?;
    reload(browser).await?;
    std::fs::write(shots().join(format!("{name}-phone.png")), browser.screenshot().await?)?;
    let overflow = eval(
        browser,
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth",
    )
    .await?;
    check!(overflow == json!(true), "no sideways scrolling on a phone");
    browser.set_window_size(1200, 900).await?;

    // Where alice is logged in: this browser and, once another device logs in, that one;
    // logging the others out leaves this one.
    let other = demo::scenarios::browser_as("OtherDevice/1.0");
    let logged_in = other
        .post(format!("{base}/api/login"))
        .json(&json!({ "user": "alice" }))
        .send()
        .await?;
    check!(logged_in.status().is_success(), "the other device logs in");
    reload(browser).await?;
    wait_for(browser, "document.querySelectorAll('#devices-list li').length === 2").await?;
    check!(
        text(browser, "devices-list").await?.contains("OtherDevice/1.0"),
        "the other device is listed with its User-Agent"
    );
    check!(
        eval(
            browser,
            "document.querySelector('#devices-list li.this').textContent.startsWith('This device')"
        )
        .await?
            == json!(true),
        "this browser is marked as this device"
    );
    eval(browser, "document.getElementById('devices').scrollIntoView(), true").await?;
    std::fs::write(shots().join(format!("{name}-devices.png")), browser.screenshot().await?)?;
    browser.find(Locator::Id("logout-others")).await?.click().await?;
    wait_for(
        browser,
        "document.getElementById('devices-status').textContent === 'Logged out 1 other device.'",
    )
    .await?;
    wait_for(browser, "document.querySelectorAll('#devices-list li').length === 1").await?;
    let peek: Value = other.get(format!("{base}/api/peek")).send().await?.json().await?;
    check!(peek["user"] == Value::Null, "the other device is logged out");
    check!(text(browser, "user").await? == "alice", "this one is not");

    // Log out: the anonymous page.
    browser.find(Locator::Css("#logout button")).await?.click().await?;
    wait_for(
        browser,
        "document.getElementById('user').textContent.includes('not logged in')",
    )
    .await?;
    check!(visible(browser, "login").await?, "the login form is back");
    check!(!visible(browser, "logout").await?, "and the logout button gone");
    check!(
        eval(browser, "document.getElementById('pref-theme').value").await? == json!(""),
        "a new session has no preferences"
    );
    check!(
        text(browser, "sudo-state").await? == "Sudo mode is off.",
        "logging out ended sudo mode"
    );

    // Log out everywhere: this browser and the other device at once.
    browser
        .find(Locator::Id("login-name"))
        .await?
        .send_keys("alice")
        .await?;
    browser
        .find(Locator::Css("#login button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_for(browser, "document.getElementById('user').textContent === 'alice'").await?;
    other
        .post(format!("{base}/api/login"))
        .json(&json!({ "user": "alice" }))
        .send()
        .await?;
    browser.find(Locator::Id("logout-everywhere")).await?.click().await?;
    wait_for(
        browser,
        "document.getElementById('user').textContent.includes('not logged in')",
    )
    .await?;
    let peek: Value = other.get(format!("{base}/api/peek")).send().await?.json().await?;
    check!(peek["user"] == Value::Null, "the other device is logged out too");
    Ok(())
}

async fn the_demo_page_works_in_a_real_browser(framework: Framework) {
    let config = SessionConfig::development().build().unwrap();
    let base = demo::serve(
        framework,
        SessionProvider::new(MemoryStore::new(), config),
        OutagePolicy::FailClosed,
    )
    .await;
    let driver = ChromeDriver::start();
    let browser = driver.session().await;
    let name = format!("{framework:?}").to_lowercase();
    let outcome = tour(&browser, &base, &name).await;
    if let Err(error) = &outcome {
        let shot = shots().join(format!("{name}-failure.png"));
        let saved = match browser.screenshot().await {
            Ok(png) => std::fs::write(&shot, png).map(|()| shot.display().to_string()),
            Err(error) => Ok(format!("no screenshot: {error}")),
        };
        let _ = browser.close().await;
        panic!(
            "{error} (screenshot: {})",
            saved.unwrap_or_else(|error| error.to_string())
        );
    }
    browser.close().await.unwrap();
}

demo::on_both_frameworks!(the_demo_page_works_in_a_real_browser,);
