/**
 * Four eyes on what changes the machine's opinion. One request enrolling tobacco tiles as "fresh fruit" once turned
 * the next falsely declared tobacco truck from ALARM into CLEAR; so a change of the reference categories (enrol,
 * replace, delete) is proposed by one supervisor and takes effect only when a different supervisor approves it
 * (references.approvals = 2, the default). With 1 it takes effect at once, recorded as proposed and approved by the
 * same person. Every step is audited; the category keeps who proposed and who approved it, and results name both.
 *
 * An enrolment is checked when proposed (its regions must hold scored goods tiles) and computed again when approved,
 * from the same scans, so what takes effect is what the approver can inspect in the proposal.
 *
 * Threads: gateway JS thread.
 */
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { AuditEvent, ScanStore, StoredReferenceProposal } from '../storage/index.js';
import type { EnrolmentRequest } from './enrolment.js';
import type { ReferenceCategory } from './reference-library.js';
import type { ResultsService } from './results-service.js';

/** Who acts, and from where (the audit trail's actor and address). */
export interface ReferenceActor {
  name: string;
  address: string | null;
}

/** The audit trail (src/identity's AuditTrail, structurally: results does not depend on identity). */
export interface ReferenceAudit {
  record(event: AuditEvent): void;
}

export interface ReferenceChangeOutcome {
  proposal: StoredReferenceProposal;
  /** What took effect: the category enrolled, or the id deleted; absent while the proposal waits for approval. */
  applied?: { enrolled: ReferenceCategory } | { deleted: string };
}

export interface ReferenceChangesOptions {
  results: ResultsService;
  store: ScanStore;
  approvals: 1 | 2;
  audit: ReferenceAudit;
  log: Logger;
}

export class ReferenceChanges {
  constructor(private readonly o: ReferenceChangesOptions) {}

  get approvals(): 1 | 2 {
    return this.o.approvals;
  }

  /** Proposes an enrolment (or a replacement of the category with the same id); applied at once with approvals 1. */
  proposeEnrolment(req: EnrolmentRequest, by: ReferenceActor): ReferenceChangeOutcome {
    const category = this.o.results.prepareReference(req); // every check of an enrolment, now
    const proposal = this.o.store.createReferenceProposal({
      action: 'enrol',
      referenceId: req.id,
      request: req as unknown as Record<string, unknown>,
      proposedBy: by.name,
      proposedAt: new Date().toISOString(),
    });
    this.audit(by, 'reference.propose', req.id, {
      proposal: proposal.id,
      change: 'enrol',
      replaces: this.o.results.hasReference(req.id),
      name: req.name,
      hsCodes: req.hsCodes,
      samples: category.samples,
    });
    return this.o.approvals === 1 ? this.approve(proposal.id, by, true) : { proposal };
  }

  /** Proposes deleting a category (SCANLINE_ERR_REFERENCE_UNKNOWN when there is none); applied at once with approvals 1. */
  proposeDeletion(id: string, by: ReferenceActor): ReferenceChangeOutcome {
    if (!this.o.results.hasReference(id)) throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNKNOWN', `no reference category ${id}`, { id });
    const proposal = this.o.store.createReferenceProposal({
      action: 'delete',
      referenceId: id,
      request: null,
      proposedBy: by.name,
      proposedAt: new Date().toISOString(),
    });
    this.audit(by, 'reference.propose', id, { proposal: proposal.id, change: 'delete' });
    return this.o.approvals === 1 ? this.approve(proposal.id, by, true) : { proposal };
  }

  /**
   * Approves a pending proposal and applies it. Throws SCANLINE_ERR_REFERENCE_PROPOSAL_UNKNOWN, _DECIDED, and
   * SCANLINE_ERR_REFERENCE_SAME_SUPERVISOR when the approver proposed it (unless `self` under approvals 1), and
   * whatever the change itself meets (a scan of its regions deleted meanwhile: it stays pending).
   */
  approve(id: number, by: ReferenceActor, self = false): ReferenceChangeOutcome {
    const proposal = this.pending(id);
    if (proposal.proposedBy === by.name && !(self && this.o.approvals === 1)) {
      this.audit(by, 'reference.approve', proposal.referenceId, { proposal: id, reason: 'same supervisor' }, 'refused');
      throw new ScanlineError(
        'SCANLINE_ERR_REFERENCE_SAME_SUPERVISOR',
        `proposal ${id} was made by ${by.name}; another supervisor must approve it (references.approvals = 2)`,
        { proposal: id },
      );
    }
    let applied: ReferenceChangeOutcome['applied'];
    if (proposal.action === 'enrol') {
      const req = proposal.request as unknown as EnrolmentRequest;
      // Computed again before the proposal is marked: a failure leaves it pending, as it was.
      const category = this.o.results.prepareReference(req);
      if (!this.o.store.decideReferenceProposal(id, 'approved', by.name, new Date().toISOString(), null)) throw this.decided(id);
      applied = { enrolled: this.o.results.enrol(req, { proposedBy: proposal.proposedBy, approvedBy: by.name }) };
      this.audit(by, 'reference.enrol', proposal.referenceId, {
        proposal: id,
        proposedBy: proposal.proposedBy,
        samples: category.samples,
        name: category.name,
        hsCodes: category.hsCodes,
      });
    } else {
      if (!this.o.results.hasReference(proposal.referenceId)) {
        throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNKNOWN', `no reference category ${proposal.referenceId} (deleted since proposal ${id})`, {
          id: proposal.referenceId,
        });
      }
      if (!this.o.store.decideReferenceProposal(id, 'approved', by.name, new Date().toISOString(), null)) throw this.decided(id);
      this.o.results.removeReference(proposal.referenceId);
      applied = { deleted: proposal.referenceId };
      this.audit(by, 'reference.delete', proposal.referenceId, { proposal: id, proposedBy: proposal.proposedBy });
    }
    if (!self) this.audit(by, 'reference.approve', proposal.referenceId, { proposal: id, change: proposal.action, proposedBy: proposal.proposedBy });
    return { proposal: this.o.store.getReferenceProposal(id) as StoredReferenceProposal, applied };
  }

  /** Rejects a pending proposal (the proposer may withdraw their own). */
  reject(id: number, by: ReferenceActor, reason: string | null): StoredReferenceProposal {
    const proposal = this.pending(id);
    if (!this.o.store.decideReferenceProposal(id, 'rejected', by.name, new Date().toISOString(), reason)) throw this.decided(id);
    this.audit(by, 'reference.reject', proposal.referenceId, { proposal: id, change: proposal.action, proposedBy: proposal.proposedBy, reason });
    return this.o.store.getReferenceProposal(id) as StoredReferenceProposal;
  }

  list(state?: StoredReferenceProposal['state']): StoredReferenceProposal[] {
    return this.o.store.listReferenceProposals(state);
  }

  get(id: number): StoredReferenceProposal {
    const p = this.o.store.getReferenceProposal(id);
    if (!p) throw new ScanlineError('SCANLINE_ERR_REFERENCE_PROPOSAL_UNKNOWN', `no reference proposal ${id}`, { proposal: id });
    return p;
  }

  private pending(id: number): StoredReferenceProposal {
    const p = this.get(id);
    if (p.state !== 'pending') throw this.decided(id, p);
    return p;
  }

  private decided(id: number, p = this.o.store.getReferenceProposal(id)): ScanlineError {
    return new ScanlineError(
      'SCANLINE_ERR_REFERENCE_PROPOSAL_DECIDED',
      `reference proposal ${id} was already ${p?.state ?? 'decided'}${p?.decidedBy ? ` by ${p.decidedBy}` : ''}`,
      {
        proposal: id,
      },
    );
  }

  private audit(by: ReferenceActor, action: string, target: string, details: Record<string, unknown>, outcome: 'ok' | 'refused' = 'ok'): void {
    this.o.audit.record({ actor: by.name, action, target, outcome, address: by.address, details });
    this.o.log.info({ actor: by.name, action, target, ...details }, 'reference change');
  }
}
