import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lambdaFunctionArn, parseArn, snsSubscriptionArn, snsTopicArn, topicOfArn } from '../../src/model/arn.js';
import { parseConfig } from '../../src/admin/config/load-config.js';

const aws = { region: 'us-east-2', accountId: '123456789100' };

test('ARNs in the shapes AWS uses', () => {
  assert.equal(
    snsTopicArn(aws, 'my-rds-triggered-topic-1'),
    'arn:aws:sns:us-east-2:123456789100:my-rds-triggered-topic-1',
  );
  assert.equal(snsSubscriptionArn(aws, 'orders.fifo', 'a1b2'), 'arn:aws:sns:us-east-2:123456789100:orders.fifo:a1b2');
  assert.equal(lambdaFunctionArn(aws, 'f1'), 'arn:aws:lambda:us-east-2:123456789100:function:f1');
});

test('a topic ARN names its topic, whatever its region and account; anything else is not a topic ARN', () => {
  assert.equal(topicOfArn('arn:aws:sns:eu-west-1:999999999999:orders.fifo'), 'orders.fifo');
  assert.equal(topicOfArn('arn:aws:sns:us-east-2:123456789100:t:0f3c'), null, 'a subscription ARN');
  assert.equal(topicOfArn('arn:aws:lambda:us-east-2:123456789100:function:f1'), null);
  assert.equal(topicOfArn('orders'), null);
  assert.deepEqual(parseArn('arn:aws:lambda:us-east-2:123456789100:function:f1:$LATEST'), {
    service: 'lambda',
    region: 'us-east-2',
    accountId: '123456789100',
    resource: 'function:f1:$LATEST',
  });
});

test('the config says which region and account rowcast names itself with; bad values name the fix', () => {
  assert.deepEqual(parseConfig({}, 'c').aws, { region: 'us-east-1', accountId: '000000000000' });
  assert.deepEqual(parseConfig({ aws }, 'c').aws, aws);
  assert.throws(() => parseConfig({ aws: { accountId: '12' } }, 'c'), /aws\.accountId.*12 digits/s);
});
