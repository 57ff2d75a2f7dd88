/** SQL files imported `with { type: "text" }` (the embedded migrations). */
declare module "*.sql" {
  const text: string;
  export default text;
}
