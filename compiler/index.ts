// The compiler's public face: compile a graph for a backend and run it with its state on the device, plan it
// without running, profile it, and choose or probe backends. Everything else under compiler/ is internal.
export {
  compile,
  plan,
  type AfterLaunch,
  type CompileOptions,
  type Executable,
  type ExecutableDevice,
  type PlanOptions,
  type ProgramPlan,
  type RunInputs,
  type StepResult,
} from './compile.ts';
export type { DeviceHandle, LiveHandles } from './runtime/device.ts';
export { BACKEND_ORDER, isBackendName, probeBackends, chooseBackend, type BackendName, type BackendProbe, type BackendChoice } from './runtime/backend.ts';
export { formatDeviceError, type DeviceError, type DeviceErrorKind } from './runtime/errors.ts';
export { StepProfiler, contractionShare, timeByOp, type KernelProfileRow, type StepProfile } from './profile.ts';
export { simplify } from './passes/simplify.ts';
export { cse } from './passes/cse.ts';
export { dce } from './passes/dce.ts';
