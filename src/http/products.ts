import { createRoute, z } from "@hono/zod-openapi";
import { DAY_MS, limits } from "../domain/limits.ts";
import { requireAdmin } from "./auth.ts";
import { authProblems, bodyProblems, problems } from "./problem.ts";
import { bearerAuth, createRouter, type RouteDeps } from "./router.ts";
import { boundedIntQuery, idParam, nameField, pageOf, pageQuery } from "./schemas.ts";

export const productSchema = z
  .object({ id: z.int(), name: z.string(), price: z.int(), stock: z.int() })
  .openapi("Product");

const popularProductSchema = z
  .object({ productId: z.int(), name: z.string(), price: z.int(), soldQuantity: z.int() })
  .openapi("PopularProduct");

const tags = ["Products"];

const createProduct = createRoute({
  method: "post",
  path: "/api/products",
  tags,
  summary: "Create a product (admin)",
  security: bearerAuth,
  middleware: [requireAdmin] as const,
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z.strictObject({
            name: nameField.openapi({ example: "Keyboard" }),
            price: z.int().min(1).max(limits.maxPrice).openapi({ description: "Won", example: 1000 }),
            stock: z.int().min(0).max(limits.maxStock).openapi({ example: 100 }),
          }),
        },
      },
    },
  },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: productSchema } } },
    ...problems(...bodyProblems, ...authProblems),
  },
});

const listProducts = createRoute({
  method: "get",
  path: "/api/products",
  tags,
  summary: "List products by id",
  request: { query: pageQuery },
  responses: {
    200: {
      description: "A page of products",
      content: { "application/json": { schema: pageOf(productSchema, "ProductPage") } },
    },
    ...problems("VALIDATION_FAILED"),
  },
});

const popularProducts = createRoute({
  method: "get",
  path: "/api/products/popular",
  tags,
  summary: "Best sellers",
  description: "Products by quantity sold in PAID orders placed in the last `days` days.",
  request: {
    query: z.object({
      days: boundedIntQuery("days", 1, limits.maxPopularDays, limits.defaultPopularDays),
      limit: boundedIntQuery("limit", 1, limits.maxPopularLimit, limits.defaultPopularLimit),
    }),
  },
  responses: {
    200: {
      description: "Best sellers, most sold first",
      content: { "application/json": { schema: z.object({ items: z.array(popularProductSchema) }) } },
    },
    ...problems("VALIDATION_FAILED"),
  },
});

const getProduct = createRoute({
  method: "get",
  path: "/api/products/{productId}",
  tags,
  summary: "Get a product",
  request: { params: z.object({ productId: idParam("productId") }) },
  responses: {
    200: { description: "The product", content: { "application/json": { schema: productSchema } } },
    ...problems("VALIDATION_FAILED", "PRODUCT_NOT_FOUND"),
  },
});

export function productsRoutes({ store, clock }: RouteDeps) {
  return createRouter()
    .openapi(createProduct, async (c) => c.json(await store.createProduct(c.req.valid("json"), clock.now()), 201))
    .openapi(listProducts, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      return c.json(await store.listProducts({ limit, after: cursor }), 200);
    })
    .openapi(popularProducts, async (c) => {
      const { days, limit } = c.req.valid("query");
      return c.json({ items: await store.popularProducts({ since: clock.now() - days * DAY_MS, limit }) }, 200);
    })
    .openapi(getProduct, async (c) => c.json(await store.getProduct(c.req.valid("param").productId), 200));
}
