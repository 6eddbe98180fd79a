/** A one-shot "warmed" flag with a promise: a warming listener waits for each of its RDS and ECDS providers. */
export class Readiness {
  private resolveFn!: () => void;
  readonly promise = new Promise<void>((resolve) => (this.resolveFn = resolve));
  private isDone = false;

  get done(): boolean {
    return this.isDone;
  }

  resolve(): void {
    if (this.isDone) return;
    this.isDone = true;
    this.resolveFn();
  }
}
