import cliProgress from 'cli-progress';
import type { JobEvent, JobStatus, Progress } from '../types.ts';

/** Shows a followed job: a live bar on a terminal, one plain line per change otherwise. */
export interface ProgressDisplay {
  show(event: JobEvent): void;
  stop(): void;
}

interface State {
  status: JobStatus;
  progress: Progress | null;
  etaSeconds: number | null;
}

export function formatEta(seconds: number | null): string {
  if (seconds === null) return '--';
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function next(state: State, event: JobEvent): State {
  switch (event.type) {
    case 'snapshot':
      return { status: event.data.status, progress: event.data.progress, etaSeconds: event.data.etaSeconds };
    case 'progress':
      return { status: 'active', progress: event.data.progress, etaSeconds: event.data.etaSeconds };
    case 'status':
      return { ...state, status: event.data.status, ...(event.data.status === 'active' ? {} : { etaSeconds: null }) };
    case 'reset':
      // The snapshot just before it already brought the state up to date.
      return state;
    default:
      return { status: event.data.status, progress: event.data.progress, etaSeconds: null };
  }
}

/** What a line or the bar says about the step: `running: step 2 of 5`, or the status while not running. */
function stepText({ status, progress }: State): string {
  if (status !== 'active' || !progress) return status;
  return progress.message ? `${progress.step}: ${progress.message}` : progress.step || 'running';
}

/** `tty`: draw a bar on `stream` (cli-progress); otherwise write a line per change. */
export function createProgressDisplay({ tty, stream }: { tty: boolean; stream: NodeJS.WriteStream }): ProgressDisplay {
  let state: State = { status: 'queued', progress: null, etaSeconds: null };

  if (!tty) {
    let last = '';
    return {
      show(event) {
        state = next(state, event);
        const percent = Math.round(state.progress?.percent ?? 0);
        const eta =
          state.status === 'active' && state.etaSeconds !== null ? ` (ETA ${formatEta(state.etaSeconds)})` : '';
        const line = `[${String(percent).padStart(3)}%] ${stepText(state)}${eta}`;
        if (line !== last) stream.write(`${line}\n`);
        last = line;
      },
      stop() {},
    };
  }

  const bar = new cliProgress.SingleBar(
    {
      format: '{bar} {percentage}% | {step} | ETA {eta_text}',
      stream,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
      // Redraw at least this often, so the bar stays alive between events.
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    show(event) {
      state = next(state, event);
      const payload = { step: stepText(state), eta_text: formatEta(state.etaSeconds) };
      const percent = state.progress?.percent ?? 0;
      if (!started) {
        bar.start(100, percent, payload);
        started = true;
      } else {
        bar.update(percent, payload);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
