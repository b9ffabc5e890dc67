import { InferenceSession, Tensor } from 'onnxruntime-node';
import { checkFeatureSpec, featureSpecDifference } from './feature-spec.js';
import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import { encodeRows } from './encode.js';
import { decodeOutputs } from './model-output.js';
import type { ModelOutput } from './model-output.js';
import { INPUT_NAME, outputName, readEmbeddedSpec } from './onnx-builder.js';

/** Thrown when a model cannot serve a spec (wrong input/output shape, task or embedded spec). */
export class ModelSpecMismatchError extends Error {
  override readonly name = 'ModelSpecMismatchError';
}

/** A loaded ONNX model bound to the spec it was checked against. */
export interface OnnxModel {
  readonly spec: FeatureSpec;
  /** Scores a batch with one session run; `result[i]` belongs to `rows[i]`. */
  predict(rows: readonly FeatureRow[]): Promise<ModelOutput[]>;
  /** Scores an already encoded `features` tensor (row-major [n, F], see `encodeRows`). */
  predictEncoded(input: Float32Array, n: number): Promise<ModelOutput[]>;
  /** Releases the native session; the model must not be used afterwards. */
  close(): Promise<void>;
}

/**
 * Loads ONNX bytes with onnxruntime-node and checks them against `spec`:
 * the only input must be `features` float32 [N, F]; the outputs must include
 * `probabilities` [N, C] (classification) or `value` [N, 1] (regression); a
 * spec embedded by the built-in trainer must equal `spec`. Throws
 * {@link ModelSpecMismatchError} naming the first problem found; errors from
 * onnxruntime itself (unparseable model) propagate unchanged.
 */
export async function loadOnnxModel(bytes: Uint8Array, spec: FeatureSpec): Promise<OnnxModel> {
  const problems = checkFeatureSpec(spec);
  if (problems.length > 0) throw new ModelSpecMismatchError(`invalid feature spec: ${problems.join('; ')}`);

  const session = await InferenceSession.create(bytes);
  const problem = sessionProblem(session, spec) ?? embeddedSpecProblem(bytes, spec);
  if (problem !== null) {
    await session.release();
    throw new ModelSpecMismatchError(`model does not match feature spec: ${problem}`);
  }

  const width = spec.features.length;
  const output = outputName(spec.task);
  const columns = spec.task === 'regression' ? 1 : spec.classes.length;

  const predictEncoded = async (input: Float32Array, n: number): Promise<ModelOutput[]> => {
    if (input.length !== n * width) {
      throw new Error(`predictEncoded: input has ${input.length} values, expected ${n} x ${width}`);
    }
    if (n === 0) return [];
    const result = await session.run({ [INPUT_NAME]: new Tensor('float32', input, [n, width]) }, [output]);
    const tensor = result[output];
    if (!tensor || tensor.type !== 'float32' || tensor.data.length !== n * columns) {
      throw new Error(`predictEncoded: output "${output}" is not float32 [${n}, ${columns}]`);
    }
    return decodeOutputs(spec, tensor.data as Float32Array, n);
  };

  return {
    spec,
    predictEncoded,
    predict: (rows) => predictEncoded(encodeRows(spec, rows), rows.length),
    close: () => session.release(),
  };
}

function sessionProblem(session: InferenceSession, spec: FeatureSpec): string | null {
  const f = spec.features.length;
  if (session.inputNames.length !== 1 || session.inputNames[0] !== INPUT_NAME) {
    return `inputs are [${session.inputNames.join(', ')}], expected exactly [${INPUT_NAME}]`;
  }
  const inputProblem = tensorProblem(session.inputMetadata[0], INPUT_NAME, f);
  if (inputProblem) return inputProblem;

  const output = outputName(spec.task);
  const index = session.outputNames.indexOf(output);
  if (index < 0) {
    return `outputs are [${session.outputNames.join(', ')}], a ${spec.task} model needs "${output}"`;
  }
  return tensorProblem(session.outputMetadata[index], output, spec.task === 'regression' ? 1 : spec.classes.length);
}

/** Checks a float32 [N, columns] value where the runtime exposes its metadata. */
function tensorProblem(meta: InferenceSession.ValueMetadata | undefined, name: string, columns: number): string | null {
  if (!meta?.isTensor) return meta ? `"${name}" is not a tensor` : null;
  if (meta.type !== 'float32') return `"${name}" is ${meta.type}, expected float32`;
  if (meta.shape.length === 0) return null; // shape not declared
  const cols = meta.shape[1];
  if (meta.shape.length !== 2 || (typeof cols === 'number' && cols >= 0 && cols !== columns)) {
    return `"${name}" has shape [${meta.shape.join(', ')}], expected [N, ${columns}]`;
  }
  return null;
}

function embeddedSpecProblem(bytes: Uint8Array, spec: FeatureSpec): string | null {
  const embedded = readEmbeddedSpec(bytes);
  if (embedded === null) return null;
  const difference = featureSpecDifference(spec, embedded);
  return difference === null ? null : `model was trained for a different spec: ${difference}`;
}
