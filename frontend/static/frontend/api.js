// JSON helpers for the Lumen API: session auth with the CSRF header, errors as ApiError.

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status; // 0 when the server could not be reached
    this.body = body;
  }
}

function describe(status, body) {
  if (body && typeof body === "object") {
    if (body.detail) return String(body.detail);
    const [field, problems] = Object.entries(body)[0] || [];
    if (field) return `${field}: ${Array.isArray(problems) ? problems.join(" ") : problems}`;
  }
  return `The server answered ${status}.`;
}

export function makeApi(csrfToken) {
  async function call(method, url, body, { keepalive = false } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        keepalive,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, null, "Could not reach the server.");
    }
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) throw new ApiError(response.status, data, describe(response.status, data));
    return data;
  }
  return {
    get: (url) => call("GET", url),
    post: (url, body, options) => call("POST", url, body ?? {}, options),
    put: (url, body, options) => call("PUT", url, body, options),
    patch: (url, body) => call("PATCH", url, body),
    del: (url) => call("DELETE", url),
  };
}
