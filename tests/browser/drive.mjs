// Drives examples/browser/ in Debian's chromium, headless, through playwright-core (no browser
// download). Run by tests/browser/test_page.py, which starts the page's server and a Python
// peer named "peer" that sends this page a direct message with PEER_BLOB and broadcasts
// "from-peer" once it has the page's direct message and broadcast.
// argv: page URL, PEER_BLOB as hex, the screenshot's path. Prints one JSON line of findings.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const require = createRequire(`${root}bindings/typescript/package.json`);
const { chromium } = require("playwright-core");

const [pageUrl, peerBlobHex, screenshot] = process.argv.slice(2);
const WAIT = { timeout: 15000 };
const PAGE_BLOB = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(pageUrl);
  await page.waitForSelector('#status[data-state="connected"]', WAIT);

  // Presence: the Python peer is listed (the peer checks it sees "browser").
  await page.waitForSelector('#participants li:has-text("peer")', WAIT);

  // The peer's direct message, with its binary attachment, byte for byte.
  const item = page.locator('#messages li:has(.kind:text-is("direct"))').filter({ hasText: "peer" });
  await item.locator("a.attachment").waitFor(WAIT);
  const received = await item.locator("a.attachment").evaluate(async (link) => {
    const bytes = new Uint8Array(await (await fetch(link.href)).arrayBuffer());
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  });

  // A direct message to the peer with a file, then a broadcast.
  await page.selectOption("#to", { label: "peer" });
  await page.fill("#text", "hello peer");
  await page.setInputFiles("#file", { name: "blob.bin", mimeType: "application/octet-stream", buffer: PAGE_BLOB });
  await page.click('button[type="submit"]');
  await page.waitForSelector('#messages li:has-text("hello peer")', WAIT);
  await page.selectOption("#to", "");
  await page.fill("#text", "hello room");
  await page.click('button[type="submit"]');
  await page.waitForSelector('#messages li:has-text("hello room")', WAIT);

  // The peer's broadcast, shown as one.
  await page.waitForSelector('#messages li:has-text("from-peer"):has(.kind:text-is("broadcast"))', WAIT);

  // A refusal: a recipient nobody has; the page shows the error's code name.
  await page.evaluate(() => {
    const to = document.getElementById("to");
    to.append(new Option("ghost", "p-nobody"));
    to.value = "p-nobody";
  });
  await page.fill("#text", "anyone there?");
  await page.click('button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("error").textContent !== "", null, WAIT);
  const refusal = await page.textContent("#error");

  await page.selectOption("#to", "");
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({
    attachmentFromPeer: received === peerBlobHex,
    attachmentLength: received.length / 2,
    pageBlob: PAGE_BLOB.toString("hex"),
    refusal,
    errors,
  }));
} finally {
  await browser.close();
}
