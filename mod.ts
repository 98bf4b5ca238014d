/**
 * autopar: automatic parallelism for TypeScript on Deno. Write tensor work the way you
 * would in PyTorch; autopar records the dependencies, dispatches the work asynchronously,
 * and runs independent work on several WebGPU devices at the same time.
 *
 * @example
 * ```ts
 * import { rand, synchronize, tryAllGpus } from "./mod.ts";
 * const devices = await tryAllGpus();
 * const xs = devices.map((device) => rand([64, 64], { device, seed: 1 }));
 * const ys = xs.map((x) => x.mm(x)); // both devices compute at once
 * await synchronize();
 * console.log(ys.length === devices.length); // true
 * ```
 *
 * @module
 */
export { cpu } from "./lib/devices/device.ts";
export type { Device, DeviceCapabilities, DeviceInfo, DeviceLimits } from "./lib/devices/device.ts";
export { capabilitiesOf } from "./lib/devices/capabilities.ts";
export { tryAllGpus, tryGpu } from "./lib/devices/discovery.ts";
export type { TryAllGpusOptions } from "./lib/devices/discovery.ts";
export type { BackendChoice, WebGpuBackend } from "./lib/devices/backend.ts";
export { configureEngine } from "./lib/engine/configure.ts";
export type { EngineMode, EngineOptions } from "./lib/engine/engine.ts";
export { OpError } from "./lib/engine/errors.ts";
export { synchronize, waitAll } from "./lib/engine/sync.ts";
export {
  ElementwiseTensor,
  LinalgTensor,
  ReductionTensor,
  ShapeTensor,
  Tensor,
  TensorCore,
} from "./lib/tensor/tensor.ts";
export { cat, stack } from "./lib/tensor/join.ts";
export type {
  BackwardOptions,
  GradFn,
  MmOptions,
  ReduceOptions,
  SoftmaxCrossEntropyOptions,
  SubOptions,
  ToOptions,
} from "./lib/tensor/tensor.ts";
export { noGrad } from "./lib/autograd/tape.ts";
export { grad, valueAndGrad } from "./lib/autograd/grad.ts";
export { Linear, Module, ReLU, replicate, Sequential } from "./lib/nn/module.ts";
export type { LinearOptions } from "./lib/nn/module.ts";
export { Dropout } from "./lib/nn/dropout.ts";
export type { DropoutOptions } from "./lib/nn/dropout.ts";
export type {
  LoadStateDictOptions,
  LoadStateDictResult,
  StateDictLike,
} from "./lib/nn/state_dict.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  SafetensorsError,
  saveSafetensors,
} from "./lib/io/safetensors.ts";
export type {
  DecodedSafetensors,
  HostTensor,
  LoadSafetensorsOptions,
  SafetensorsDtype,
  SaveSafetensorsOptions,
} from "./lib/io/safetensors.ts";
export { DataParallel } from "./lib/nn/data_parallel.ts";
export type { DataParallelOptions, StepResult } from "./lib/nn/data_parallel.ts";
export { Optimizer } from "./lib/optim/optimizer.ts";
export type { ParameterSource } from "./lib/optim/optimizer.ts";
export { SGD } from "./lib/optim/sgd.ts";
export type { SgdOptions } from "./lib/optim/sgd.ts";
export { Adam } from "./lib/optim/adam.ts";
export { capture } from "./lib/capture/capture.ts";
export type { Captured, CaptureOptions, CaptureResult } from "./lib/capture/capture.ts";
export type { AdamOptions } from "./lib/optim/adam.ts";
export type { GradOptions, Grads } from "./lib/autograd/grad.ts";
export { fromArray, ones, rand, randn, zeros } from "./lib/tensor/creation.ts";
export type { CreateOptions, NestedNumbers, RandOptions } from "./lib/tensor/creation.ts";
export { trace$ } from "./lib/trace/trace.ts";
export type { TraceEvent, TraceOptions, TraceStream } from "./lib/trace/trace.ts";
export { exportChromeTrace } from "./lib/trace/chrome_trace.ts";
export type { ChromeTrace, ChromeTraceEvent } from "./lib/trace/chrome_trace.ts";
export { formatSummary, summarize } from "./lib/trace/summarize.ts";
export type {
  CopySummary,
  LaneSummary,
  SummarizeOptions,
  TraceSummary,
} from "./lib/trace/summarize.ts";
export { benchmark } from "./lib/bench/benchmark.ts";
export type { Benchmark, BenchmarkOptions } from "./lib/bench/benchmark.ts";
export { produce } from "./lib/streams/produce.ts";
export type { ProduceOptions, TensorStream } from "./lib/streams/produce.ts";
export { copyTo } from "./lib/streams/copy_to.ts";
export type { CopyToOptions, TensorOperator } from "./lib/streams/copy_to.ts";
export { closeDevices } from "./lib/devices/discovery.ts";
export { DataLoader } from "./lib/data/data_loader.ts";
export type { DataLoaderOptions } from "./lib/data/data_loader.ts";
export { DistributedSampler } from "./lib/data/distributed_sampler.ts";
export type { DistributedSamplerOptions, Sampler } from "./lib/data/distributed_sampler.ts";
export { TensorDataset } from "./lib/data/dataset.ts";
export type { Batch, BatchDataset } from "./lib/data/dataset.ts";
export { mlp, Trainer } from "./lib/train/trainer.ts";
export type { MlpOptions, StepOutputs, TrainerOptions } from "./lib/train/trainer.ts";
export type { Dataset } from "./lib/train/mnist.ts";
export {
  allGather,
  allReduce,
  barrier,
  broadcast,
  destroyProcessGroup,
  getRank,
  getWorldSize,
  initProcessGroup,
  isInitialized,
  Work,
} from "./lib/distributed/collectives.ts";
export type { AllReduceOptions } from "./lib/distributed/collectives.ts";
export { DistributedError } from "./lib/distributed/process_group.ts";
export type { ReduceOp } from "./lib/distributed/process_group.ts";
export type { ProcessGroupOptions } from "./lib/distributed/options.ts";
export { ChildFailedError, formatLine, launch, LaunchError } from "./lib/distributed/launch.ts";
export type { LaunchOptions, LaunchResult, OutputLine } from "./lib/distributed/launch.ts";
export { parseLaunchArgs } from "./lib/distributed/launch_args.ts";
export type { AdapterPlan } from "./lib/distributed/adapters.ts";
export { probeNats, startNatsServer } from "./lib/distributed/nats_server.ts";
export type { NatsInfo, NatsServer, NatsServerOptions } from "./lib/distributed/nats_server.ts";
export { TracePublisher, traceSubject } from "./lib/distributed/trace_publisher.ts";
export type { TraceMessage, TracePublisherOptions } from "./lib/distributed/trace_publisher.ts";
export { DistributedDataParallel } from "./lib/distributed/ddp.ts";
export type { DistributedDataParallelOptions } from "./lib/distributed/ddp.ts";
