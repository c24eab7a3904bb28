// The baseline a team would hand-write: Express 5 + BullMQ, no auth, no validation, no records of
// its own, status by getState(). Started by bench/compare.ts as `tsx bench/plain-api.ts <redis> <prefix> <port>`.
import { Queue } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';

const [url = '', prefix = '', port = '0'] = process.argv.slice(2);
const queue = new Queue('plain', { connection: new Redis(url, { maxRetriesPerRequest: 1 }), prefix });
const app = express();
app.use(express.json());
app.post('/v1/jobs', async (req, res) => {
  const job = await queue.add(req.body.type, req.body.input);
  res.status(202).json({ id: job.id, status: 'queued' });
});
app.get('/v1/jobs/:id', async (req, res) => {
  const job = await queue.getJob(req.params.id);
  if (!job) {
    res.status(404).json({ error: 'not found' });
    return;
  }
  res.json({ id: job.id, status: await job.getState(), progress: job.progress });
});
const server = app.listen(Number(port), () => process.send?.('ready'));
process.on('SIGTERM', () => server.close(() => void queue.close().then(() => process.exit(0))));
