/** Custom search attributes of sync runs (registered on the dev server by src/dev/services.ts). Workflow-safe. */
import { defineSearchAttributeKey } from '@temporalio/common';

export const SA_SYNC_ID = defineSearchAttributeKey('AmpsyncSyncId', 'KEYWORD');
export const SA_OBJECT = defineSearchAttributeKey('AmpsyncObject', 'KEYWORD');
/** running | paused | succeeded | failed | cancelled | skipped */
export const SA_STATUS = defineSearchAttributeKey('AmpsyncStatus', 'KEYWORD');
export const SA_ROWS_CHANGED = defineSearchAttributeKey('AmpsyncRowsChanged', 'INT');
export const SA_ROWS_DELIVERED = defineSearchAttributeKey('AmpsyncRowsDelivered', 'INT');
export const SA_ROWS_REJECTED = defineSearchAttributeKey('AmpsyncRowsRejected', 'INT');

/** Name → type, for registering them (`temporal operator search-attribute create`). */
export const SEARCH_ATTRIBUTE_TYPES: Record<string, 'Keyword' | 'Int'> = {
  AmpsyncSyncId: 'Keyword',
  AmpsyncObject: 'Keyword',
  AmpsyncStatus: 'Keyword',
  AmpsyncRowsChanged: 'Int',
  AmpsyncRowsDelivered: 'Int',
  AmpsyncRowsRejected: 'Int',
};
