// Moving between pages. Routes are hashes (#/jobs/ID?x=1), so the daemon serves one page for all of them.

/** Go to another page (records history, so Back works). */
export function go(hash) {
  location.hash = hash;
}

/** A link to a page, with its query built from an object (empty values left out). */
export function href(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value) params.set(name, value);
  const text = params.toString();
  return `#/${path}${text ? `?${text}` : ""}`;
}

/** Change the current page's query without re-rendering it (e.g. which runs are compared). */
export function setQuery(query) {
  const [path] = location.hash.split("?");
  const link = href(path.replace(/^#\//, ""), query);
  history.replaceState(null, "", link);
}
