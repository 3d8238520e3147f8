// The LINE IN intercom: while its button is held, the box's microphone is heard on its AUDIO OUT or a camera's
// speaker (line_in.channel; the box says which as `output`). The hold
// is a lease the page renews while the button is down (POST /api/intercom/hold every lease/3) and lets
// go of when it comes up; a page that goes away simply stops renewing.
import { api, el, may, onCleanup } from "./app.js";

/** The intercom's card, or null when the box has none. */
export async function intercomCard() {
  let info;
  try { info = await api("/api/intercom"); } catch { return null; }
  if (!info || !info.available) return null;
  const status = el("span", { id: "intercom-status", role: "status" }, "");
  const button = el("button", { type: "button", id: "intercom-hold", class: "primary", disabled: !may("operator"),
                                "aria-pressed": "false",
                                title: `Hold to hear the box's LINE IN microphone on ${info.output}` },
                  info.output.startsWith("the AUDIO OUT") ? "Hold: LINE IN to AUDIO OUT" : `Hold: LINE IN to ${info.output}`);
  let holding = false, timer = null;
  async function renew() {
    try {
      const answer = await api("/api/intercom/hold", { method: "POST" });
      status.textContent = "Open";
      return answer;
    } catch (e) { status.textContent = e.message; release(); return null; }
  }
  async function press(ev) {
    if (ev) ev.preventDefault();
    if (holding || button.disabled) return;
    holding = true;
    button.setAttribute("aria-pressed", "true");
    const answer = await renew();
    if (holding && answer) timer = setInterval(renew, answer.renew_within_s * 1000);
  }
  function release() {
    if (!holding) return;
    holding = false;
    clearInterval(timer); timer = null;
    button.setAttribute("aria-pressed", "false");
    status.textContent = "";
    api("/api/intercom/release", { method: "POST" }).catch(() => {});  // the lease closes it anyway
  }
  button.addEventListener("pointerdown", press);
  for (const name of ["pointerup", "pointerleave", "pointercancel", "blur"]) button.addEventListener(name, release);
  button.addEventListener("keydown", (ev) => { if ((ev.key === " " || ev.key === "Enter") && !ev.repeat) press(ev); });
  button.addEventListener("keyup", (ev) => { if (ev.key === " " || ev.key === "Enter") release(); });
  onCleanup(release);
  return el("div", { class: "card row", id: "intercom" }, button, status);
}
