/**
 * The error the simulator answers in OpenAI's shape (see `errorResponse` in openai.ts).
 *
 * @module
 */

/** An error the simulator answers in OpenAI's shape. */
export class SimHttpError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** The request parameter at fault, or `null`. */
  readonly param: string | null;

  /**
   * Creates an error.
   *
   * @param status HTTP status.
   * @param message Sentence-case message quoting the offending value.
   * @param param The request parameter at fault.
   */
  constructor(status: number, message: string, param: string | null = null) {
    super(message);
    this.name = "SimHttpError";
    this.status = status;
    this.param = param;
  }
}
