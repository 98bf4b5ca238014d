/**
 * The names of the ops that autograd records: one gradient rule each (lib/autograd/
 * rules.ts). A Tensor op records only a name of this list, and the rules' table must cover
 * every name, so a missing rule is a compile error, not an error at backward().
 *
 * @module
 */

/** Every recorded op, in the order of the rules' table. */
export const GRAD_OPS = [
  "add",
  "sub",
  "mul",
  "div",
  "neg",
  "exp",
  "log",
  "sqrt",
  "tanh",
  "sigmoid",
  "relu",
  "reshape",
  "transpose",
  "permute",
  "slice",
  "unslice",
  "cat",
  "stack",
  "indexSelect",
  "indexAdd",
  "gather",
  "scatterAdd",
  "matmul",
  "narrow",
  "expand",
  "to",
  "mm",
  "sum",
  "mean",
  "max",
  "logSoftmax",
  "crossEntropy",
  "min",
  "maximum",
  "minimum",
  "clamp",
  "softmax",
  "logSumExp",
] as const;

/** The name of an op that autograd records. */
export type GradOp = typeof GRAD_OPS[number];
