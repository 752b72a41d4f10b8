// parley web client — accounts: register, log in, profile (rectification), devices.
// The token lives in sessionStorage only (gone when the tab closes).
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("parley.token");

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = "Bearer " + token;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  const doc = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    const err = new Error(doc && doc.error ? doc.error.message : resp.statusText);
    err.code = doc && doc.error ? doc.error.code : "http_" + resp.status;
    throw err;
  }
  return doc;
}

function say(text) { $("#status").textContent = text; }

function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) if (v !== "") out[k] = v;
  return out;
}

async function showSignedIn() {
  const me = await api("GET", "/v1/me");
  $("#signed-out").hidden = true;
  $("#signed-in").hidden = false;
  const dl = $("#profile");
  dl.replaceChildren();
  for (const k of ["username", "name", "dob", "region", "gender"]) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = me[k] ?? "—";
    dl.append(dt, dd);
  }
  const { devices } = await api("GET", "/v1/devices");
  const ul = $("#devices");
  ul.replaceChildren();
  for (const d of devices) {
    const li = document.createElement("li");
    li.textContent = `${d.name || "device"}${d.current ? " (this one)" : ""}`;
    if (!d.current) {
      const b = document.createElement("button");
      b.textContent = "Revoke";
      b.onclick = async () => { await api("DELETE", "/v1/devices/" + encodeURIComponent(d.device_id)); showSignedIn(); };
      li.append(" ", b);
    }
    ul.append(li);
  }
}

function showSignedOut() {
  token = null;
  sessionStorage.removeItem("parley.token");
  $("#signed-out").hidden = false;
  $("#signed-in").hidden = true;
}

$("#register-form").onsubmit = async (e) => {
  e.preventDefault();
  const body = formData(e.target);
  if (body.region) body.region = body.region.toUpperCase();
  try {
    await api("POST", "/v1/accounts", body);
    say("Account created. You can log in now.");
  } catch (err) { say(err.message); }
};

$("#login-form").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const body = formData(e.target);
    body.device_name = "web browser";
    const s = await api("POST", "/v1/sessions", body);
    token = s.token;
    sessionStorage.setItem("parley.token", token);
    say("");
    await showSignedIn();
  } catch (err) { say(err.message); }
};

$("#profile-form").onsubmit = async (e) => {
  e.preventDefault();
  try { await api("PATCH", "/v1/me", formData(e.target)); await showSignedIn(); say("Saved."); }
  catch (err) { say(err.message); }
};

$("#logout").onclick = async () => {
  try { await api("DELETE", "/v1/sessions/current"); } catch (err) { /* already gone */ }
  showSignedOut();
};

if (token) showSignedIn().catch(showSignedOut);
