// Node's `util.format`, for near-api-js's ABI validator (is-my-json-valid ->
// generate-function), which the page never runs but the bundle must resolve.
/** printf-style formatting of %s, %d, %j and %%. */
export function format(template, ...args) {
  let i = 0;
  return String(template).replace(/%[sdj%]/g, (m) => (m === "%%" ? "%" : m === "%j" ? JSON.stringify(args[i++]) : String(args[i++])));
}
export default { format };
