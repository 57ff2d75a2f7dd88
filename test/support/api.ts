/** Thin HTTP helpers: every call goes over the network to a running server. */
export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function call<T = any>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/**
 * A client bound to one server and, when given, one bearer token, with the resources tests create most.
 * Creating users, products and coupons needs an admin token.
 */
export function client(base: string, token?: string) {
  const auth: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const api = {
    token,
    get: <T = any>(path: string, headers?: Record<string, string>) =>
      call<T>(base, "GET", path, undefined, { ...auth, ...headers }),
    post: <T = any>(path: string, body?: unknown, headers?: Record<string, string>) =>
      call<T>(base, "POST", path, body, { ...auth, ...headers }),

    async user(name = "buyer", points = 0): Promise<{ id: number; name: string; balance: number }> {
      const created = await api.post("/api/users", { name });
      if (created.status !== 201) throw new Error(`createUser: ${created.status} ${JSON.stringify(created.body)}`);
      if (points > 0) await api.charge(created.body.id, points);
      return { ...created.body, balance: points };
    },
    async charge(userId: number, amount: number) {
      const charged = await api.post(`/api/users/${userId}/points/charge`, { amount });
      if (charged.status !== 200) throw new Error(`charge: ${charged.status} ${JSON.stringify(charged.body)}`);
      return charged.body as { userId: number; balance: number };
    },
    async product(price = 1000, stock = 100, name = "widget"): Promise<{ id: number; price: number; stock: number }> {
      const created = await api.post("/api/products", { name, price, stock });
      if (created.status !== 201) throw new Error(`createProduct: ${created.status} ${JSON.stringify(created.body)}`);
      return created.body;
    },
    async coupon(input: Record<string, unknown> = {}): Promise<{ id: number; totalQuantity: number }> {
      const created = await api.post("/api/coupons", {
        name: "drop",
        discountType: "FIXED",
        discountValue: 1000,
        totalQuantity: 100,
        ...input,
      });
      if (created.status !== 201) throw new Error(`createCoupon: ${created.status} ${JSON.stringify(created.body)}`);
      return created.body;
    },
    issue: (userId: number, couponId: number) => api.post(`/api/coupons/${userId}`, { couponId }),
    order: (
      userId: number,
      items: { productId: number; quantity: number }[],
      userCouponId?: number,
      headers?: Record<string, string>,
    ) =>
      api.post(
        "/api/orders",
        userCouponId === undefined ? { userId, items } : { userId, items, userCouponId },
        headers,
      ),
  };
  return api;
}

export type Client = ReturnType<typeof client>;

/** 503 SERVICE_UNAVAILABLE as problem+json, with a Retry-After: a dependency's fault, answered. */
export function expectUnavailable(reply: Reply): void {
  expectProblem(reply, 503, "SERVICE_UNAVAILABLE");
  const retryAfter = Number(reply.headers.get("retry-after"));
  if (!(retryAfter > 0)) throw new Error(`503 without a positive Retry-After: ${reply.headers.get("retry-after")}`);
}

/** Asserts an RFC 9457 problem response with the given status and stable code. */
export function expectProblem(reply: Reply, status: number, code: string): void {
  const seen = { status: reply.status, contentType: reply.headers.get("content-type"), code: reply.body?.code };
  const want = { status, contentType: "application/problem+json", code };
  if (JSON.stringify(seen) !== JSON.stringify(want)) {
    throw new Error(`expected ${JSON.stringify(want)}, got ${JSON.stringify(seen)}: ${JSON.stringify(reply.body)}`);
  }
  for (const field of ["type", "title", "detail"]) {
    if (typeof reply.body[field] !== "string")
      throw new Error(`problem without ${field}: ${JSON.stringify(reply.body)}`);
  }
  if (reply.body.status !== status) throw new Error(`problem body status ${reply.body.status} != ${status}`);
}
