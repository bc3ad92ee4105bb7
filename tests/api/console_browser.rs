//! The operator console in a real headless Chromium, as a person uses it:
//! sign in, watch the overview's numbers move while messages arrive, edit
//! a rule, see the validation error of a bad regex, test the draft
//! against a sample, save, and then get the new reply from the callback
//! endpoint; add a keyword reply with the form and save it; the conversations and accounts pages; the overview on a
//! phone-sized screen. Each page is saved as a screenshot under
//! `<target dir>/console-screenshots/` (`scripts/console-screenshots.sh`
//! copies them to `docs/console/`).

use crate::console::{BAD_REGEX, DRAFT};
use crate::support::{Browser, ConsoleApp, ACCOUNT, CONSOLE_KEY};

/// The number the overview shows for the default account's requests.
async fn requests_shown(browser: &Browser) -> f64 {
    browser
        .text("[data-account=\"default\"] .requests")
        .await
        .trim()
        .parse()
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn a_person_edits_tests_and_saves_a_rule_in_the_browser() {
    let console = ConsoleApp::start(ConsoleApp::config().set("console.show_content", true)).await;
    let browser = Browser::start(1280, 900).await;
    let page = format!("{}/console", console.operator);

    // Sign in: a wrong key is refused on the page, the right one opens it.
    browser.goto(&page).await;
    browser.find("#key").await;
    browser.type_into("#key", "not-the-key").await;
    browser.click("#signin").await;
    browser
        .wait_text("#signin-error", |t| t.contains("Wrong key"))
        .await;
    browser.screenshot("signin").await;
    browser.type_into("#key", CONSOLE_KEY).await;
    browser.click("#signin").await;

    // The overview, live: the numbers move while messages arrive.
    browser.find("[data-account=\"default\"] .requests").await;
    let before = requests_shown(&browser).await;
    assert!(before >= 0.0, "the overview shows a number");
    for i in 0..5 {
        assert!(console
            .answer("hello wxgate", 100 + i)
            .await
            .starts_with("hi "));
    }
    browser
        .wait_text("[data-account=\"default\"] .requests", |t| {
            t.trim().parse::<f64>().is_ok_and(|n| n >= before + 5.0)
        })
        .await;
    // The rate of the last poll: messages keep coming until a poll sees them
    // (a bounded wait, not a timing assertion).
    let mut moved = false;
    for i in 0..60 {
        let rps = browser.text("[data-account=\"default\"] .rps").await;
        if rps.trim().parse::<f64>().is_ok_and(|n| n > 0.0) {
            moved = true;
            break;
        }
        assert!(console
            .answer("hello wxgate", 300 + i)
            .await
            .starts_with("hi "));
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(moved, "the requests/s never moved");
    browser.screenshot("overview").await;

    // Rules: the table, then a bad regex in the editor.
    browser.click("#nav-rules").await;
    browser
        .wait_text("#rules-table tbody", |t| t.contains("hello wxgate"))
        .await;
    browser.type_into("#rules-toml", BAD_REGEX).await;
    browser.click("#rules-validate").await;
    let error = browser
        .wait_text("#rules-errors", |t| t.contains("broken"))
        .await;
    assert!(
        error.contains("wxgate.toml") && error.contains("regex"),
        "{error}"
    );
    browser.screenshot("rules-error").await;

    // The good draft: valid, and the tester answers from it before saving.
    browser.type_into("#rules-toml", DRAFT).await;
    browser.click("#rules-validate").await;
    browser
        .wait_text("#rules-status", |t| {
            t.contains("valid") && t.contains("price")
        })
        .await;
    browser.type_into("#test-content", "请问多少钱").await;
    browser.click("#test-run").await;
    browser.wait_text("#test-rule", |t| t == "price").await;
    assert_eq!(browser.text("#test-reply").await, "十块钱");
    browser.screenshot("rules-tester").await;
    assert_eq!(
        console.answer("请问多少钱", 200).await,
        "echo: 请问多少钱",
        "not saved yet"
    );

    // Save: the callback endpoint answers with the new reply.
    browser.click("#rules-save").await;
    browser
        .wait_text("#rules-status", |t| t.contains("Saved and reloaded"))
        .await;
    browser
        .wait_text("#backups-table tbody", |t| t.contains("UTC"))
        .await;
    assert_eq!(console.answer("请问多少钱", 201).await, "十块钱");
    assert_eq!(
        console.answer("hello wxgate", 202).await,
        "hello from the console"
    );

    // The form: a keyword reply added without writing TOML, then saved.
    browser.type_into("#add-name", "hours").await;
    browser
        .find("#add-kind option[value=\"contains\"]")
        .await
        .click()
        .await
        .unwrap();
    browser.type_into("#add-match", "几点, 营业时间").await;
    browser.type_into("#add-reply", "9:00 到 18:00").await;
    browser.click("#add-go").await;
    browser
        .wait_text("#rules-status", |t| t.contains("+hours"))
        .await;
    browser
        .wait_text("#rules-table tbody", |t| t.contains("营业时间"))
        .await;
    browser.click("#rules-save").await;
    browser
        .wait_text("#rules-status", |t| {
            t.contains("Saved and reloaded") && t.contains("+hours")
        })
        .await;
    assert_eq!(console.answer("请问营业时间？", 203).await, "9:00 到 18:00");
    browser.scroll_top().await;
    browser.screenshot("rules").await;

    // Conversations: the messages just sent, with their answers.
    browser.click("#nav-conversations").await;
    browser
        .wait_text("#conv-table tbody", |t| t.contains("十块钱"))
        .await;
    let rows = browser.text("#conv-table tbody").await;
    assert!(!rows.contains(&ACCOUNT.openid), "OpenIDs are shortened");
    browser.screenshot("conversations").await;

    // Accounts: masked until revealed; the URL verifies.
    browser.click("#nav-accounts").await;
    let token = browser.wait_text(".secret.token", |t| !t.is_empty()).await;
    assert!(token.starts_with("••••"), "{token}");
    browser.click(".verify").await;
    browser
        .wait_text(".verify-result", |t| t.contains("Verification passes"))
        .await;
    browser.screenshot("accounts").await;
    browser.click(".reveal").await;
    browser
        .wait_text(".secret.token", |t| t == ACCOUNT.token)
        .await;

    // 中文, on a phone.
    browser.click("#lang").await;
    browser.click("#nav-overview").await;
    browser
        .wait_text("#page-overview h1", |t| t.contains("概览"))
        .await;
    browser.resize(390, 844).await;
    browser
        .wait_text("[data-account=\"default\"] .requests", |t| !t.is_empty())
        .await;
    browser.screenshot("overview-phone").await;

    // Sign out: back to the sign-in form.
    browser.click("#signout").await;
    browser.find("#page-signin:not([hidden])").await;
    browser.close().await;
}
