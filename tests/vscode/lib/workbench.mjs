// Driving the code-server workbench from a test: the command palette and boo's webviews.

/**
 * Runs a command through the command palette (opened from the title bar, whatever has
 * focus). A webview that takes the focus as it is revealed (its tab just clicked) closes
 * the palette it finds open: then the palette is opened again (at most three times).
 */
export async function command(page, title, match = title) {
  const input = page.locator('.quick-input-widget input');
  for (let attempt = 1; ; attempt++) {
    try {
      await page.keyboard.press('Escape');
      await page.keyboard.press('F1');
      try {
        await input.waitFor({ state: 'visible', timeout: 3000 });
      } catch {
        await page.locator('.command-center .search-label, .command-center').first().click();
        await input.waitFor({ state: 'visible' });
        await input.fill('>');
      }
      await input.fill(`>${title}`);
      const row = page.locator('.quick-input-list .monaco-list-row').first();
      await row.waitFor({ state: 'visible' });
      await page.waitForFunction((t) => document.querySelector('.quick-input-list .monaco-list-row')?.textContent?.includes(t), match, { timeout: 10_000 });
      await page.keyboard.press('Enter');
      return;
    } catch (err) {
      if (attempt >= 3 || (await input.isVisible())) throw err;
    }
  }
}

/** The frame of a visible boo webview (`body[data-view=view]`) whose content satisfies `pred`. */
export async function webview(page, view, { pred = async () => true, timeout = 30_000 } = {}) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    for (const f of page.frames()) {
      try {
        if (!(await f.locator(`body[data-view="${view}"]`).count())) continue;
        const box = await (await f.frameElement()).boundingBox();
        if (!box || box.width < 50) continue;
        if (await pred(f)) return f;
      } catch {
        /* frame went away */
      }
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no visible ${view} webview within ${timeout} ms`);
}
