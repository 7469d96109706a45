"""One notebook open in JupyterLab, driven the way a learner drives it.

Like a learner at the keyboard, a ``LabPage`` opens the notebook, chooses Run > Run All Cells,
waits for the kernel to finish, saves, and then looks at what is on the screen: error output,
diagrams, plots and sliders. Saving writes into the server's temporary copy of the course, and
the saved file tells exactly which outputs are errors (stderr text and tracebacks look the same
on the page).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from course.notebook_files import read_ipynb

RUN_TIMEOUT_MS = 180_000
SLIDER_TIMEOUT_MS = 60_000
PLOT = ".jp-OutputArea-output[data-mime-type='image/png'] img"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGETS_DRAWN = ".jp-OutputArea-output:has(.widget-box, .widget-inline-hbox)"  # not "Loading"
MERMAID = ".jp-RenderedMermaid"
MERMAID_DRAWN = (f"{MERMAID}:not(.jp-mod-warning) svg, "
                 f"{MERMAID}:not(.jp-mod-warning) img[src^='data:image/svg+xml']")
MAX_SCREENSHOT_HEIGHT = 30_000

# True once the notebook's kernel has started and is idle (before it starts the indicator
# also says idle, next to "No Kernel").
_KERNEL_READY = """() => {
    const name = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
    const status = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
    return name && !['', 'No Kernel'].includes(name.textContent.trim())
        && status?.dataset.status === 'idle';
}"""
_PLOT_SOURCES = "imgs => imgs.filter(i => i.complete).map(i => i.src).join('\\n')"
# Notes on the cell when the notebook's kernel goes busy, so a settled slider can be told apart.
_WATCH_KERNEL = """cell => {
    const status = cell.closest('.jp-NotebookPanel')
        .querySelector('.jp-Notebook-ExecutionIndicator');
    cell.dataset.sawBusy = '';
    new MutationObserver((_, observer) => {
        if (status.dataset.status === 'busy') {
            cell.dataset.sawBusy = 'yes';
            observer.disconnect();
        }
    }).observe(status, {attributes: true});
}"""
_REDRAWN_OR_SETTLED = f"""([cell, before]) => {{
    const now = ({_PLOT_SOURCES})([...cell.querySelectorAll("{PLOT}")]);
    const status = cell.closest('.jp-NotebookPanel')
        .querySelector('.jp-Notebook-ExecutionIndicator');
    return (now && now !== before)
        || (cell.dataset.sawBusy === 'yes' && status.dataset.status === 'idle');
}}"""
# True once Run All has finished: no cell queued or running ([*]) and at least one has run.
_RUN_FINISHED = """panel => {
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .map(p => p.textContent.trim());
    return !prompts.some(p => p.includes('*')) && prompts.some(p => /\\[\\d+\\]/.test(p));
}"""


def output_counts(nb) -> tuple[int, int]:
    """How many plot images and widget views a notebook's outputs hold."""
    data = [output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", [])]
    return (sum("image/png" in item for item in data),
            sum(WIDGET_VIEW in item for item in data))


@dataclass
class CellProblem:
    """What went wrong in one cell, worded for a failure message."""

    index: int
    first_line: str
    problem: str

    def __str__(self) -> str:
        return f"cell {self.index} ({self.first_line!r}): {self.problem}"


class LabPage:
    """A browser page showing one notebook in JupyterLab."""

    def __init__(self, page, base_url: str, path: str, served_root: Path):
        self.page = page
        self.base_url = base_url
        self.path = path
        self.file = served_root / path
        self.panel = page.locator(".jp-NotebookPanel")  # narrowed to this one's id on open

    @classmethod
    def open(cls, page, base_url: str, token: str, path: str, served_root: Path,
             kernel: bool = True) -> LabPage:
        """Load JupyterLab on ``path`` in a fresh workspace and (unless ``kernel`` is false,
        for a notebook only looked at) wait for an idle kernel."""
        lab_page = cls(page, base_url, path, served_root)
        workspace = f"test-{uuid.uuid4().hex[:12]}"
        page.goto(f"{base_url}/lab/workspaces/{workspace}/tree/{quote(path)}?reset&token={token}")
        lab_page.panel.locator(".jp-Cell").first.wait_for()
        lab_page.panel = page.locator(f"#{lab_page.panel.get_attribute('id')}")
        if kernel:
            page.wait_for_function(_KERNEL_READY)
        return lab_page

    def dialogs(self) -> list[str]:
        """Text of any dialog JupyterLab shows (an error a learner would have to dismiss)."""
        return [text.strip() for text in self.page.locator(".jp-Dialog").all_inner_texts()]

    def menu(self, menu: str, command: str) -> None:
        """Open a menu of the menu bar and choose the item that runs ``command``."""
        self.page.get_by_role("menuitem", name=menu, exact=True).click()
        self.page.locator(f".lm-Menu-item[data-command='{command}']").click()

    def run_all(self) -> None:
        """Run > Run All Cells, then wait until nothing is queued and the kernel is idle."""
        if self.panel.locator(".jp-CodeCell").count() == 0:
            return
        self.menu("Run", "runmenu:run-all")
        try:
            self.page.wait_for_function(_RUN_FINISHED, arg=self.panel.element_handle(),
                                        timeout=RUN_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            raise AssertionError(self._stuck_message()) from None
        self.panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()

    def _stuck_message(self) -> str:
        cells = self.panel.locator(".jp-Cell").evaluate_all("""cells => cells.map(c => [
            c.querySelector('.jp-InputPrompt')?.textContent.trim() ?? '',
            c.querySelector('.cm-line')?.textContent ?? ''])""")
        stuck = [f"cell {index} ({line!r}): prompt {prompt}"
                 for index, (prompt, line) in enumerate(cells) if "*" in prompt]
        done = sum(any(ch.isdigit() for ch in prompt) for prompt, _ in cells)
        return (f"{self.path}: Run All did not finish within {RUN_TIMEOUT_MS // 1000} s; "
                f"still running or queued: {stuck or 'none'}; cells run: {done} of "
                f"{len(cells)}; dialogs: {self.dialogs() or 'none'}")

    def save(self) -> None:
        """File > Save Notebook, into the server's temporary copy; wait until it is clean."""
        self.menu("File", "docmanager:save")
        self.page.locator(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)").wait_for()

    def cell_problems(self) -> list[CellProblem]:
        """Error outputs and unexecuted code cells in the saved notebook.

        An error in a cell tagged ``raises-exception`` is intended (nbval honours the same tag).
        """
        problems = []
        for index, cell in enumerate(read_ipynb(self.file).cells):
            if cell.cell_type != "code":
                continue
            first_line = cell.source.splitlines()[0] if cell.source else ""
            tags = cell.metadata.get("tags", [])
            for output in cell.outputs:
                if output.output_type == "error" and "raises-exception" not in tags:
                    problems.append(CellProblem(index, first_line,
                                                f"{output.ename}: {output.evalue}"))
            if cell.execution_count is None:
                problems.append(CellProblem(index, first_line, "not executed"))
        return problems

    def mermaid(self) -> tuple[int, list[str]]:
        """How many mermaid diagrams are drawn, and the errors of those that are not."""
        drawn = self.panel.locator(MERMAID_DRAWN).count()
        failed = self.panel.locator(f"{MERMAID}.jp-mod-warning")
        return drawn, [text.strip() for text in failed.all_inner_texts()]

    def wait_for_mermaid(self, expected: int) -> None:
        """Mermaid draws asynchronously: wait until ``expected`` blocks are drawn or failed."""
        if expected:
            self.page.wait_for_function(
                "([panel, n]) => panel.querySelectorAll("
                f"'{MERMAID} figure, {MERMAID}.jp-mod-warning').length >= n",
                arg=[self.panel.element_handle(), expected],
            )

    def plot_count(self) -> int:
        """Plot images that have loaded (decoded with a non-zero width)."""
        return self.panel.locator(PLOT).evaluate_all(
            "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")

    def wait_for_drawn(self, plots: int, widgets: int, timeout_ms: float | None = None) -> None:
        """Images load and widgets are restored asynchronously (widgets once the kernel is
        up): wait until ``plots`` plots and ``widgets`` widget views are drawn."""
        self.page.wait_for_function(
            "([panel, plots, widgets]) => [...panel.querySelectorAll(\"" + PLOT + "\")]"
            ".filter(i => i.complete && i.naturalWidth > 0).length >= plots"
            " && panel.querySelectorAll(\"" + WIDGETS_DRAWN + "\").length >= widgets",
            arg=[self.panel.element_handle(), plots, widgets], timeout=timeout_ms)

    def widget_count(self) -> int:
        """Widget outputs drawn as widgets (not as their plain-text stand-in or an error)."""
        return self.panel.locator(WIDGETS_DRAWN).count()

    def notebook_links(self) -> dict[int, str]:
        """Each distinct ``.ipynb`` the rendered Markdown links to: {link number: served path}."""
        prefix = urlsplit(self.base_url).path + "/files/"
        links: dict[int, str] = {}
        anchors = self.panel.locator(".jp-RenderedMarkdown a")
        try:  # on a busy machine the Markdown cells render a while after the tab opens
            anchors.first.wait_for(state="attached", timeout=30_000)
        except PlaywrightTimeoutError:
            pass  # a notebook without links
        hrefs = anchors.evaluate_all(
            "anchors => anchors.map(a => a.href)")
        for index, href in enumerate(hrefs):
            path = urlsplit(href).path
            target = unquote(path.removeprefix(prefix))
            if path.startswith(prefix) and path.endswith(".ipynb") and target not in links.values():
                links[index] = target
        return links

    def open_link(self, index: int, target: str) -> None:
        """Click link number ``index``: ``target`` must open in a new current tab (then closed)."""
        link = self.panel.locator(".jp-RenderedMarkdown a").nth(index)
        text = link.inner_text()
        link.click()
        current = self.page.locator(".lm-DockPanel .lm-TabBar-tab.jp-mod-current")
        tab = self.page.locator(f".lm-TabBar-tab.jp-mod-current[title*='Path: {target}']")
        try:
            tab.wait_for(timeout=30_000)
        except PlaywrightTimeoutError:
            shown = current.first.get_attribute("title") if current.count() else None
            raise AssertionError(f"{self.path}: clicking {text!r} did not open {target} "
                                 f"(current tab: {shown!r}; dialogs: {self.dialogs() or 'none'})"
                                 ) from None
        self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for()
        # The kernel's start marks the document changed; closing it asks whether to save.
        tab.locator(".lm-TabBar-tabCloseIcon").click()
        discard = self.page.locator(".jp-Dialog").get_by_role("button", name="Discard")
        for _ in range(100):  # up to 10 s for the dialog or the tab's closing
            if discard.is_visible():
                discard.click()
            if tab.count() == 0:
                break
            self.page.wait_for_timeout(100)
        tab.wait_for(state="detached")

    def root_listing(self) -> list[str]:
        """The names the file browser shows at the root of the served folder."""
        self.page.locator(".jp-BreadCrumbs-home").first.click()
        items = self.page.locator(".jp-DirListing-item .jp-DirListing-itemText")
        items.first.wait_for()
        self.page.wait_for_function(
            "() => !document.querySelector('.jp-BreadCrumbs')?.textContent.includes('notebooks')")
        return [text.strip() for text in items.all_inner_texts()]

    def type_into_cell(self, cell, text: str) -> None:
        """Replace the text of a code cell, as a learner selecting all and typing would."""
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)

    def run_cell(self, cell) -> str:
        """Click into one cell and press Ctrl+Enter (run it, stay on it); return its output text
        once it has finished. The cell is held by its element: running the last cell with
        Shift+Enter or Run > Run Selected Cell adds a new empty cell that a locator such as
        ``cells.last`` would then match instead."""
        cell = cell.element_handle()  # this cell, not whatever a locator matches later
        cell.query_selector(".cm-content").click()  # a locked cell is read-only, yet active
        self.page.keyboard.press("Control+Enter")  # run it and stay: no new cell below
        try:
            self.page.wait_for_function(
                "cell => /\\[\\d+\\]/.test(cell.querySelector('.jp-InputPrompt').textContent)",
                arg=cell, timeout=RUN_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            prompt = cell.query_selector(".jp-InputPrompt").inner_text()
            raise AssertionError(f"{self.path}: the cell did not finish (prompt {prompt!r}); "
                                 f"output so far: {cell.inner_text()!r}") from None
        return cell.query_selector(".jp-OutputArea").inner_text()

    def move_slider(self, screenshot: Path) -> tuple[str, str]:
        """Nudge the sliders of the first cell that shows sliders and a plot, one at a time,
        until the plot is redrawn differently; return the plot's image sources before and after.

        A slider gets focus and three arrow presses (left when it is at its maximum), as a
        keyboard user would do. A slider may leave the plot as it was (its effect can be nil
        at the other defaults), so the next one is tried once the kernel has handled the change.
        The cell, redrawn, is saved as ``screenshot``.
        """
        cell = self.panel.locator(".jp-CodeCell").filter(
            has=self.page.locator(".widget-slider")).filter(has=self.page.locator(PLOT)).first
        cell.wait_for(timeout=10_000)
        before = cell.locator(PLOT).evaluate_all(_PLOT_SOURCES)
        sliders = cell.locator(".widget-slider")
        tried = []
        for index in range(sliders.count()):
            slider = sliders.nth(index)
            handle = slider.locator("[role='slider']").first
            tried.append(slider.locator(".widget-label").inner_text().strip() or f"#{index}")
            at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
            cell.evaluate(_WATCH_KERNEL)
            handle.focus()
            for _ in range(3):
                handle.press("ArrowLeft" if at_max else "ArrowRight")
            try:
                self.page.wait_for_function(_REDRAWN_OR_SETTLED, timeout=SLIDER_TIMEOUT_MS,
                                            arg=[cell.element_handle(), before])
            except PlaywrightTimeoutError:
                raise AssertionError(
                    f"{self.path}: moving slider {tried[-1]!r} neither redrew the plot nor made "
                    f"the kernel run within {SLIDER_TIMEOUT_MS // 1000} s") from None
            after = cell.locator(PLOT).evaluate_all(_PLOT_SOURCES)
            if after != before:
                # Later presses may still be redrawing: let the kernel settle for the picture.
                self.panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
                self.page.wait_for_timeout(500)
                size = self.page.viewport_size  # tall enough for the whole cell
                height = max(size["height"], int(cell.bounding_box()["height"]) + 200)
                self.page.set_viewport_size({"width": size["width"], "height": height})
                cell.screenshot(path=screenshot)
                self.page.set_viewport_size(size)
                return before, after
        raise AssertionError(f"{self.path}: the plot stayed the same after moving each slider "
                             f"({', '.join(tried)})")

    def screenshot(self, path: Path) -> None:
        """The whole notebook in one image: grow the viewport to the notebook's full height."""
        scroller = self.panel.locator(".jp-WindowedPanel-outer").first
        scroller.evaluate("e => { e.scrollTop = 0; }")
        # How far the last cell reaches below the visible part (not the scroll-past-end space).
        hidden = scroller.evaluate("""e => {
            const cells = e.querySelectorAll('.jp-Cell');
            const last = cells[cells.length - 1].getBoundingClientRect();
            return Math.ceil(last.bottom - e.getBoundingClientRect().bottom) + 24;
        }""")
        size = self.page.viewport_size
        height = min(size["height"] + max(hidden, 0), MAX_SCREENSHOT_HEIGHT)
        self.page.set_viewport_size({"width": size["width"], "height": height})
        self.page.wait_for_timeout(300)  # one layout pass after the resize
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=path, full_page=True)
        self.page.set_viewport_size(size)
